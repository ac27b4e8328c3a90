"""`identity` commands: API keys and identities (cli.md §4).

``identity [KEY | FILE]``, ``identity of``, ``identity info``, ``identity ls`` here;
``identity new`` in ``identity_new.py``. Also the legacy ``tool identity new|of`` aliases of
KES <= v0.17 (cli.md §4.7), which old tutorials still show.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from kes_flask.auth import certs
from kes_flask.auth.identity import API_KEY_PREFIX, APIKey, certificate_identity
from kes_flask.cli.common import (
    HELP_OPTIONS,
    CommandError,
    Console,
    PflagCommand,
    PflagGroup,
    bordered,
    color_option,
    console,
    enclave_option,
    format_time,
    insecure_option,
    json_option,
    parse_go_duration,
    read_file,
    with_help_hint,
    write,
    write_json,
)
from kes_flask.cli.connect import connect, failing_as
from kes_flask.cli.identity_new import (
    DEFAULT_CERT_FILE,
    DEFAULT_KEY_FILE,
    collect_options,
    create_identity,
    file_options,
    new_identity,
    program_name,
)
from kes_flask.client.types import ZERO_TIME

__all__ = ["Console", "identity", "parse_go_duration", "tool"]


# --- outputs -------------------------------------------------------------------------------------


def _echo_identity(out: Console, identity_hex: str, framed: bool) -> None:
    if not out.is_terminal():
        write(identity_hex)
    elif framed:
        lines = ["Identity:", "", f"   {out.bold(identity_hex)}", ""]
        lines += ["An identity is a fingerprint of your API key"]
        lines += ["or certificate and can be shared securely."]
        write(bordered(lines))
    else:
        write(f"Identity:\n\n   {out.bold(identity_hex)}\n")


def _echo_new_api_key(out: Console, program: str) -> None:
    api_key = APIKey.generate()
    if not out.is_terminal():
        write(str(api_key))
        return
    lines = ["Your API key:", "", f"   {out.bold(str(api_key))}", ""]
    lines += ["This is the only time it is shown. Keep it secret and secure!", ""]
    lines += ["Your API key's identity:", "", f"   {out.bold(api_key.identity)}", ""]
    lines += ["The identity is not a secret and can be shared securely."]
    lines += ["Peers need your identity in order to verify your API key.", ""]
    lines += ["This identity can be re-computed again via:", ""]
    lines += [f"  $ {program} identity {api_key}"]
    write(bordered(lines))


def _echo_api_key_of_private_key(out: Console, api_key: APIKey, path: str) -> None:
    if not out.is_terminal():
        write(str(api_key))
        return
    lines = ["Your API key:", "", f"   {out.bold(str(api_key))}", ""]
    lines += [f"It corresponds to the private key in: {path}.", "Keep it secret and secure!"]
    write(bordered(lines))


# --- identity of ---------------------------------------------------------------------------------


def show_identity_of(ctx: click.Context, argument: str, data: Callable[[], bytes]) -> None:
    """Print the identity of an API key (``kes:v1:…``) or of the first certificate of a file."""
    out = console(ctx)
    if argument.startswith(API_KEY_PREFIX):
        try:
            identity_hex = APIKey.parse(argument).identity
        except ValueError as err:
            raise CommandError(str(err)) from None
        _echo_identity(out, identity_hex, framed=False)
        return
    content = data()
    try:
        leaf = certs.load_certificate_chain_pem(content)[0]
    except certs.PemError as err:
        raise CommandError(f"failed to parse certificate in '{argument}': https: {err}") from None
    except ValueError:
        message = f"failed to parse certificate in '{argument}': x509: malformed certificate"
        raise CommandError(message) from None
    _echo_identity(out, certificate_identity(leaf.public_bytes(Encoding.DER)), framed=False)


# --- identity [KEY | FILE] -----------------------------------------------------------------------


def _show_key_or_file(ctx: click.Context, argument: str) -> None:
    out = console(ctx)
    try:
        api_key = APIKey.parse(argument)
    except ValueError:
        pass
    else:
        _echo_identity(out, api_key.identity, framed=True)
        return
    for block in certs.pem_blocks(read_file(argument).strip()):
        if block.type == "CERTIFICATE":
            try:
                x509.load_der_x509_certificate(block.der)
                identity_hex = certificate_identity(block.der)
            except ValueError:
                raise CommandError("x509: malformed certificate") from None
            _echo_identity(out, identity_hex, framed=True)
            return
        if "PRIVATE KEY" in block.type:
            try:
                private_key = load_der_private_key(block.der, None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise CommandError("x509: failed to parse private key") from None
            if not isinstance(private_key, Ed25519PrivateKey):
                reason = "contains unsupported private key. Only ed25519 private keys are supported"
                raise CommandError(f"'{argument}' {reason}")
            _echo_api_key_of_private_key(out, APIKey(private_key), argument)
            return
    raise CommandError(f"'{argument}' contains no valid PEM certificate or private key")


class _KeyOrFileCommand(PflagCommand):
    """The bare ``identity [KEY | FILE]`` form, reached through ``IdentityGroup``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        parent = ctx.parent.command_path if ctx.parent else "identity"
        formatter.write_usage(parent, "[KEY | FILE]")


@click.command(cls=_KeyOrFileCommand, help_hint=False)
@click.argument("arguments", nargs=-1, metavar="[KEY | FILE]")
@click.pass_context
def _key_or_file(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """Show the identity of an API key or certificate, or the API key of a private key file."""
    if len(arguments) > 1:
        raise CommandError("too many arguments")
    if arguments:
        _show_key_or_file(ctx, arguments[0])
    else:
        _echo_new_api_key(console(ctx), program_name(ctx))


class IdentityGroup(PflagGroup):
    """Dispatches ``new|of|info|ls``; any other word is an API key or a file (cli.md §4.1)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if click.Group.get_command(self, ctx, args[0]) is None:
            return "", _key_or_file, args
        return click.Group.resolve_command(self, ctx, args)


@click.group(
    cls=IdentityGroup,
    invoke_without_command=True,
    context_settings={**HELP_OPTIONS, "ignore_unknown_options": True},
    subcommand_metavar="<command> | [KEY | FILE]",
)
@click.pass_context
def identity(ctx: click.Context) -> None:
    """Manage KES identities. Without a command: print a new API key."""
    if ctx.invoked_subcommand is None:
        _echo_new_api_key(console(ctx), program_name(ctx))


@identity.command("new", cls=PflagCommand)
@click.option("--key", "key_file", metavar="<PATH>", help="Write the private key here.")
@click.option("--cert", "cert_file", metavar="<PATH>", help="Write the certificate here.")
@file_options
@click.pass_context
def identity_new(ctx: click.Context, **values: object) -> None:
    """Create a new API key and, with --key/--cert, a TLS private key and certificate."""
    new_identity(ctx, values)


@identity.command("of", cls=PflagCommand)
@click.argument("arguments", nargs=-1, metavar="<api-key> | <certificate>")
@click.pass_context
def identity_of(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """Compute the identity of an API key or of a certificate file."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no API key or certificate specified"))
    show_identity_of(ctx, arguments[0], lambda: read_file(arguments[0]))


# --- identity info | ls (server) -----------------------------------------------------------------


def _line(label: str, value: str) -> str:
    return f"{label:<11} {value}\n"


@identity.command("info", cls=PflagCommand)  # spec says "policy ls" (C15); Go v0.24.0 does not
@insecure_option
@json_option
@color_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="[<identity>]")
@click.pass_context
def identity_info(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, **_: object
) -> None:
    """Get information about a KES identity (yours without an argument)."""
    if len(arguments) > 1:
        raise CommandError(ctx.command.hint(ctx, "too many arguments"))  # type: ignore[attr-defined]
    client = connect(ctx, insecure)
    with failing_as():
        if not arguments:
            me = client.describe_self()
            text = _line("Identity", me.identity) + _line("Created At", format_time(me.created_at))
            text += _line("Role", "Admin" if me.admin else "User")
            if me.created_by:
                text += _line("Created By", me.created_by)
            if me.policy:
                text += "\n" + _line("Policy", me.policy)
                text += _line("Created At", format_time(ZERO_TIME))  # kms-go never fills it
                text += f"{'Allow':<11}\n" + "".join(f"{'':11} · {rule}\n" for rule in me.allow)
                text += f"{'Deny':<11}\n" + "".join(f"{'':11} · {rule}\n" for rule in me.deny)
            write(text)
            return
        info = client.describe_identity(arguments[0])
    text = _line("Identity", arguments[0])
    if info.policy:
        text += _line("Policy", info.policy)
    text += _line("Created At", format_time(info.created_at))
    text += _line("Role", "Admin" if info.admin else "User")
    if info.created_by:
        text += _line("Created By", info.created_by)
    write(text)


@identity.command("ls", cls=PflagCommand)
@insecure_option
@json_option
@color_option
@click.argument("arguments", nargs=-1, metavar="[<pattern>]")
@click.pass_context
def identity_ls(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """List KES identities."""
    if len(arguments) > 1:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    client = connect(ctx, insecure)
    with failing_as("failed to list identities: "):
        identities = client.list_identities(arguments[0] if arguments else "")
    print_list(identities, "Identity", as_json)


def print_list(names: list[str], header: str, as_json: bool) -> None:
    """A listing: a JSON array (``null`` when empty, as Go prints a nil slice) or a table."""
    if as_json:
        write_json(names or None)
    elif names:
        write("".join(f"{line}\n" for line in [header, *names]))


# --- legacy: tool identity new|of ----------------------------------------------------------------


def _deprecation_note(ctx: click.Context, replacement: str) -> None:
    program = program_name(ctx)
    click.echo(
        f"Note: '{program} tool identity' is deprecated. Use '{program} {replacement}' instead.",
        err=True,
    )


@click.group(cls=PflagGroup, noun="tool", hidden=True)
def tool() -> None:
    """Deprecated commands of KES v0.17 and older."""


@tool.group("identity", cls=PflagGroup, noun="identity")
def tool_identity() -> None:
    """Deprecated: use the identity command."""


@tool_identity.command("new", cls=PflagCommand)
@click.option("--key", "key_file", default=DEFAULT_KEY_FILE, show_default=True, metavar="<PATH>")
@click.option("--cert", "cert_file", default=DEFAULT_CERT_FILE, show_default=True, metavar="<PATH>")
@click.option("--server", is_flag=True, help="Ignored: certificates are for clients and servers.")
@file_options
@click.pass_context
def tool_identity_new(ctx: click.Context, server: bool, **values: object) -> None:
    """Deprecated alias of `identity new` writing private.key and public.crt by default."""
    del server  # every certificate carries both the clientAuth and the serverAuth usage
    options = collect_options(ctx, **values)  # type: ignore[arg-type]
    _deprecation_note(ctx, "identity new")
    create_identity(ctx, options)


@tool_identity.command("of", cls=PflagCommand)
@click.option("--hash", "hash_name", default="SHA-256", show_default=True, metavar="<HASH>")
@click.argument("arguments", nargs=-1, metavar="[<certificate> | -]")
@click.pass_context
def tool_identity_of(ctx: click.Context, hash_name: str, arguments: tuple[str, ...]) -> None:
    """Deprecated alias of `identity of`; reads standard input without a file or with '-'."""
    if hash_name.upper() != "SHA-256":
        raise CommandError(f"unsupported hash '{hash_name}': identities are always SHA-256")
    _deprecation_note(ctx, "identity of")
    argument = arguments[0] if arguments else "-"
    if argument == "-":
        show_identity_of(ctx, argument, sys.stdin.buffer.read)
    else:
        show_identity_of(ctx, argument, lambda: read_file(argument))
