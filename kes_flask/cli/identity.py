"""`identity` commands: create API keys and certificates, compute identities (cli.md §4).

Also the legacy `tool identity new|of` aliases of KES <= v0.17 (cli.md §4.7), which old tutorials
still show. Output follows cli.md byte for byte; whether "a terminal" is attached (stdout OR
stderr, §1.5) selects between the human and the machine form.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import click
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from kes_flask.auth import certs
from kes_flask.auth.identity import API_KEY_PREFIX, APIKey, certificate_identity

DEFAULT_KEY_FILE = "private.key"
DEFAULT_CERT_FILE = "public.crt"
DEFAULT_EXPIRY = timedelta(hours=720)

_HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_DURATION_TERM = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration is int64 nanoseconds


# --- terminal ------------------------------------------------------------------------------------


def _stdout_or_stderr_is_tty() -> bool:
    return sys.stdout.isatty() or sys.stderr.isatty()


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _read_password_from_terminal(prompt: str) -> str:
    """Read without echo; the prompt goes to stderr so stdout stays clean for the output."""
    if not sys.stderr.isatty():
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
    return getpass.getpass(prompt, stream=sys.stderr)


@dataclass(frozen=True)
class Console:
    """What the commands need from the terminal. Pass another one as click ``obj`` to override."""

    is_terminal: Callable[[], bool] = _stdout_or_stderr_is_tty  # human or machine output
    styled: Callable[[], bool] = _stdout_is_tty  # bold text (lipgloss looks at stdout only)
    read_password: Callable[[str], str] = _read_password_from_terminal

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.styled() else text


def _console(ctx: click.Context) -> Console:
    return ctx.find_object(Console) or Console()


def _write(text: str) -> None:
    """Write to stdout as is: ``Console`` already decided about escape sequences."""
    click.echo(text, nl=False, color=True)


def _bordered(lines: Sequence[str]) -> str:
    """The invisible lipgloss border: a blank frame of one space around the padded lines."""
    widths = [len(_ANSI_ESCAPE.sub("", line)) for line in lines]
    width = max(widths)
    framed = [f" {line}{' ' * (width - w)} " for line, w in zip(lines, widths, strict=True)]
    blank = " " * (width + 2)
    return "\n".join([blank, *framed, blank]) + "\n"


# --- errors and parsing --------------------------------------------------------------------------


class CommandError(click.ClickException):
    """Printed as ``Error: <message>`` on stderr, exit status 1 (cli.md §1.3)."""


def _program_name(ctx: click.Context) -> str:
    root = ctx.find_root()
    if root.command in (identity, tool) or not root.info_name:
        return "kes"
    return root.info_name


def _with_help_hint(ctx: click.Context, reason: str) -> str:
    return f"{reason}. See '{ctx.command_path} --help'"


def _os_error_text(err: OSError, path: str) -> str:
    """Go's ``open <path>: <reason>`` form of a file error."""
    reason = err.strerror or str(err)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"


def _flag_text(option_name: str) -> str:
    return option_name if option_name.startswith("--") else f"'{option_name[1:]}' in {option_name}"


class PflagCommand(click.Command):
    """A command reporting parse errors like Go's pflag (cli.md §1.2): exit 1, one error line."""

    def __init__(self, *args: object, help_hint: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.help_hint = help_hint

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as err:
            long_form = err.option_name.startswith("--")
            prefix = "unknown flag" if long_form else "unknown shorthand flag"
            reason = f"{prefix}: {_flag_text(err.option_name)}"
        except click.BadOptionUsage as err:
            reason = err.message.rstrip(".")
            if "requires an argument" in err.message:
                reason = f"flag needs an argument: {_flag_text(err.option_name)}"
        except click.UsageError as err:
            reason = err.message.rstrip(".")
        raise CommandError(_with_help_hint(ctx, reason) if self.help_hint else reason)


def parse_go_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` (``720h``, ``1h30m``, ``1.5s``), with Go's error texts."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    seconds, pos = 0.0, 0
    while pos < len(body):
        term = _DURATION_TERM.match(body, pos)
        assert term is not None  # every group is optional
        whole, fraction, unit = term.groups()
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        seconds += float(f"{whole or 0}.{fraction or 0}") * _DURATION_UNITS[unit]
        pos = term.end()
    if seconds > _MAX_DURATION_SECONDS:
        raise ValueError(f'time: invalid duration "{text}"')
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)


def _parse_expiry(ctx: click.Context, text: str | None) -> timedelta:
    if text is None:
        return timedelta(0)
    try:
        expiry = parse_go_duration(text)
    except ValueError as err:
        reason = str(err)
    else:
        if expiry >= timedelta(0):
            return expiry
        reason = "the certificate would expire before it becomes valid"
    message = f'invalid argument "{text}" for "--expiry" flag: {reason}'
    raise CommandError(_with_help_hint(ctx, message))


def _parse_ips(ctx: click.Context, values: Sequence[str]) -> list[str]:
    """IP SANs from repeated and comma-separated ``--ip`` values."""
    ips = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ips.append(str(ipaddress.ip_address(item)))
            except ValueError:
                reason = f"invalid string being converted to IP address: {item}"
                hint = _with_help_hint(ctx, f'invalid argument "{value}" for "--ip" flag: {reason}')
                raise CommandError(hint) from None
    return ips


def _split_names(values: Sequence[str]) -> list[str]:
    parts = (part.strip() for value in values for part in value.split(","))
    return [part for part in parts if part]


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise CommandError(_os_error_text(err, path)) from None


# --- outputs -------------------------------------------------------------------------------------


def _echo_identity(console: Console, identity: str, bordered: bool) -> None:
    if not console.is_terminal():
        _write(identity)
    elif bordered:
        lines = ["Identity:", "", f"   {console.bold(identity)}", ""]
        lines += ["An identity is a fingerprint of your API key"]
        lines += ["or certificate and can be shared securely."]
        _write(_bordered(lines))
    else:
        _write(f"Identity:\n\n   {console.bold(identity)}\n")


def _echo_new_api_key(console: Console, program: str) -> None:
    api_key = APIKey.generate()
    if not console.is_terminal():
        _write(str(api_key))
        return
    lines = ["Your API key:", "", f"   {console.bold(str(api_key))}", ""]
    lines += ["This is the only time it is shown. Keep it secret and secure!", ""]
    lines += ["Your API key's identity:", "", f"   {console.bold(api_key.identity)}", ""]
    lines += ["The identity is not a secret and can be shared securely."]
    lines += ["Peers need your identity in order to verify your API key.", ""]
    lines += ["This identity can be re-computed again via:", ""]
    lines += [f"  $ {program} identity {api_key}"]
    _write(_bordered(lines))


def _echo_api_key_of_private_key(console: Console, api_key: APIKey, path: str) -> None:
    if not console.is_terminal():
        _write(str(api_key))
        return
    lines = ["Your API key:", "", f"   {console.bold(str(api_key))}", ""]
    lines += [f"It corresponds to the private key in: {path}.", "Keep it secret and secure!"]
    _write(_bordered(lines))


def _new_identity_text(
    console: Console, program: str, api_key: APIKey, key_file: str | None, cert_file: str | None
) -> str:
    lines = ["Your API key:", "", f"   {console.bold(str(api_key))}", ""]
    lines += ["This is the only time it is shown. Keep it secret and secure!", ""]
    lines += ["Your Identity:", "", f"   {console.bold(api_key.identity)}", ""]
    lines += ["The identity is not a secret. It can be shared. Any peer"]
    lines += ["needs this identity in order to verify your API key.", ""]
    if cert_file:
        lines += [f"The generated TLS private key is stored at: {key_file}"]
        lines += [f"The generated TLS certificate is stored at: {cert_file}", ""]
    lines += ["The identity can be computed again via:", ""]
    lines += [f"    {program} identity of {api_key}"]
    lines += [f"    {program} identity of {cert_file}" if cert_file else ""]
    return "\n".join(lines) + "\n"


# --- identity new --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewIdentityOptions:
    subject: str | None
    key_file: str | None
    cert_file: str | None
    ips: Sequence[str] = ()
    dns: Sequence[str] = ()
    expiry: timedelta = timedelta(0)  # 0: the default validity
    encrypt: bool = False
    force: bool = False


def _ask_new_password(console: Console) -> bytes:
    try:
        password = console.read_password("Enter password for private key:")
        confirmation = console.read_password("Confirm password for private key:")
    except OSError as err:
        reason = err.strerror or str(err)
        raise CommandError(f"{reason[:1].lower()}{reason[1:]}") from None
    except EOFError:
        raise CommandError("reading password: EOF") from None
    if password != confirmation:
        raise CommandError("passwords don't match")
    if not password:
        raise CommandError("password must not be empty")
    return password.encode("utf-8")


def _write_identity_files(
    options: NewIdentityOptions, api_key: APIKey, cert: x509.Certificate, password: bytes | None
) -> None:
    key_file, cert_file = options.key_file or "", options.cert_file or ""
    key_pem = certs.private_key_pem(api_key.private_key, password)
    try:
        certs.write_private_key_file(key_file, key_pem, options.force)
    except OSError as err:
        reason = _os_error_text(err, key_file)
        raise CommandError(f"failed to create private key: {reason}") from None
    try:
        certs.write_certificate_file(cert_file, certs.certificate_pem(cert), options.force)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(key_file)
        reason = _os_error_text(err, cert_file)
        raise CommandError(f"failed to create certificate: {reason}") from None


def create_identity(ctx: click.Context, options: NewIdentityOptions) -> None:
    """Generate an API key and, with key/cert files, its certificate; print the result."""
    console = _console(ctx)
    api_key = APIKey.generate()
    if options.key_file and options.cert_file:
        cert = certs.identity_certificate(
            api_key, options.subject, options.ips, options.dns, options.expiry or DEFAULT_EXPIRY
        )
        if not options.force and os.path.lexists(options.key_file):
            raise CommandError("private key already exists. Use --force to overwrite it")
        if not options.force and os.path.lexists(options.cert_file):
            raise CommandError("certificate already exists. Use --force to overwrite it")
        password = _ask_new_password(console) if options.encrypt else None
        _write_identity_files(options, api_key, cert, password)
    text = _new_identity_text(
        console, _program_name(ctx), api_key, options.key_file, options.cert_file
    )
    _write(text)


def _needs_files(options: NewIdentityOptions) -> bool:
    return bool(options.encrypt or options.force or options.expiry or options.ips or options.dns)


# --- identity of ---------------------------------------------------------------------------------


def show_identity_of(ctx: click.Context, argument: str, data: Callable[[], bytes]) -> None:
    """Print the identity of an API key (``kes:v1:…``) or of the first certificate of a file."""
    console = _console(ctx)
    if argument.startswith(API_KEY_PREFIX):
        try:
            identity_hex = APIKey.parse(argument).identity
        except ValueError as err:
            raise CommandError(str(err)) from None
        _echo_identity(console, identity_hex, bordered=False)
        return
    content = data()
    try:
        leaf = certs.load_certificate_chain_pem(content)[0]
    except certs.PemError as err:
        raise CommandError(f"failed to parse certificate in '{argument}': https: {err}") from None
    except ValueError:
        message = f"failed to parse certificate in '{argument}': x509: malformed certificate"
        raise CommandError(message) from None
    _echo_identity(console, certificate_identity(leaf.public_bytes(Encoding.DER)), bordered=False)


# --- identity [KEY | FILE] -----------------------------------------------------------------------


def _show_key_or_file(ctx: click.Context, argument: str) -> None:
    console = _console(ctx)
    try:
        api_key = APIKey.parse(argument)
    except ValueError:
        pass
    else:
        _echo_identity(console, api_key.identity, bordered=True)
        return
    for block in certs.pem_blocks(_read_file(argument).strip()):
        if block.type == "CERTIFICATE":
            try:
                x509.load_der_x509_certificate(block.der)
                identity_hex = certificate_identity(block.der)
            except ValueError:
                raise CommandError("x509: malformed certificate") from None
            _echo_identity(console, identity_hex, bordered=True)
            return
        if "PRIVATE KEY" in block.type:
            try:
                private_key = load_der_private_key(block.der, None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise CommandError("x509: failed to parse private key") from None
            if not isinstance(private_key, Ed25519PrivateKey):
                reason = "contains unsupported private key. Only ed25519 private keys are supported"
                raise CommandError(f"'{argument}' {reason}")
            _echo_api_key_of_private_key(console, APIKey(private_key), argument)
            return
    raise CommandError(f"'{argument}' contains no valid PEM certificate or private key")


class _KeyOrFileCommand(PflagCommand):
    """The bare ``identity [KEY | FILE]`` form, reached through ``IdentityGroup``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        parent = ctx.parent.command_path if ctx.parent else "identity"
        formatter.write_usage(parent, "[KEY | FILE]")


@click.command(cls=_KeyOrFileCommand, help_hint=False, context_settings=_HELP_OPTIONS)
@click.argument("arguments", nargs=-1, metavar="[KEY | FILE]")
@click.pass_context
def _key_or_file(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """Show the identity of an API key or certificate, or the API key of a private key file."""
    if len(arguments) > 1:
        raise CommandError("too many arguments")
    if arguments:
        _show_key_or_file(ctx, arguments[0])
    else:
        _echo_new_api_key(_console(ctx), _program_name(ctx))


class IdentityGroup(click.Group):
    """Dispatches ``new``/``of``; any other word is an API key or a file name (cli.md §4.1)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if self.get_command(ctx, args[0]) is None:
            return "", _key_or_file, args
        return super().resolve_command(ctx, args)


@click.group(
    cls=IdentityGroup,
    invoke_without_command=True,
    context_settings={**_HELP_OPTIONS, "ignore_unknown_options": True},
    subcommand_metavar="<command> | [KEY | FILE]",
)
@click.pass_context
def identity(ctx: click.Context) -> None:
    """Create API keys and compute identities. Without a command: print a new API key."""
    if ctx.invoked_subcommand is None:
        _echo_new_api_key(_console(ctx), _program_name(ctx))


def _file_options(command: Callable[..., None]) -> Callable[..., None]:
    """Options shared by `identity new` and the legacy `tool identity new`."""
    for option in reversed(
        [
            click.option("--ip", "ips", multiple=True, metavar="<IP>", help="IP SAN (repeatable)."),
            click.option("--dns", multiple=True, metavar="<DOMAIN>", help="DNS SAN (repeatable)."),
            click.option(
                "--expiry",
                "-t",
                "--time",
                "expiry",
                metavar="<DURATION>",
                help="Certificate validity, e.g. 8760h. (default: 720h)",
            ),
            click.option("--encrypt", is_flag=True, help="Encrypt the private key (password)."),
            click.option("-f", "--force", is_flag=True, help="Overwrite existing files."),
            click.argument("subjects", nargs=-1, metavar="[<subject>]"),
        ]
    ):
        command = option(command)
    return command


def _collect_options(
    ctx: click.Context,
    subjects: tuple[str, ...],
    key_file: str | None,
    cert_file: str | None,
    ips: tuple[str, ...],
    dns: tuple[str, ...],
    expiry: str | None,
    encrypt: bool,
    force: bool,
) -> NewIdentityOptions:
    """Parse values in pflag's order: value errors first, then the argument count."""
    options = NewIdentityOptions(
        subject=subjects[0] if subjects else None,
        key_file=key_file,
        cert_file=cert_file,
        ips=_parse_ips(ctx, ips),
        dns=_split_names(dns),
        expiry=_parse_expiry(ctx, expiry),
        encrypt=encrypt,
        force=force,
    )
    if len(subjects) > 1:
        raise CommandError(_with_help_hint(ctx, "too many arguments"))
    return options


@identity.command("new", cls=PflagCommand, context_settings=_HELP_OPTIONS)
@click.option("--key", "key_file", metavar="<PATH>", help="Write the private key here.")
@click.option("--cert", "cert_file", metavar="<PATH>", help="Write the certificate here.")
@_file_options
@click.pass_context
def identity_new(ctx: click.Context, **values: object) -> None:
    """Create a new API key and, with --key/--cert, a TLS private key and certificate."""
    options = _collect_options(ctx, **values)  # type: ignore[arg-type]
    if options.key_file and not options.cert_file:
        reason = "private key file specified but no certificate file. Set the '--cert' flag"
        raise CommandError(reason)
    if options.cert_file and not options.key_file:
        reason = "certificate file specified but no private key file. Set the '--key' flag"
        raise CommandError(reason)
    if not options.key_file and _needs_files(options):  # legacy default files (cli.md §4.2.3)
        click.echo(
            f"Note: using default files '{DEFAULT_KEY_FILE}' and '{DEFAULT_CERT_FILE}'", err=True
        )
        options = NewIdentityOptions(
            **{**vars(options), "key_file": DEFAULT_KEY_FILE, "cert_file": DEFAULT_CERT_FILE}
        )
    create_identity(ctx, options)


@identity.command("of", cls=PflagCommand, context_settings=_HELP_OPTIONS)
@click.argument("arguments", nargs=-1, metavar="<api-key> | <certificate>")
@click.pass_context
def identity_of(ctx: click.Context, arguments: tuple[str, ...]) -> None:
    """Compute the identity of an API key or of a certificate file."""
    if not arguments:
        raise CommandError(_with_help_hint(ctx, "no API key or certificate specified"))
    show_identity_of(ctx, arguments[0], lambda: _read_file(arguments[0]))


# --- legacy: tool identity new|of ----------------------------------------------------------------


def _deprecation_note(ctx: click.Context, replacement: str) -> None:
    program = _program_name(ctx)
    click.echo(
        f"Note: '{program} tool identity' is deprecated. Use '{program} {replacement}' instead.",
        err=True,
    )


@click.group(context_settings=_HELP_OPTIONS, hidden=True)
def tool() -> None:
    """Deprecated commands of KES v0.17 and older."""


@tool.group("identity", context_settings=_HELP_OPTIONS)
def tool_identity() -> None:
    """Deprecated: use the identity command."""


@tool_identity.command("new", cls=PflagCommand, context_settings=_HELP_OPTIONS)
@click.option("--key", "key_file", default=DEFAULT_KEY_FILE, show_default=True, metavar="<PATH>")
@click.option("--cert", "cert_file", default=DEFAULT_CERT_FILE, show_default=True, metavar="<PATH>")
@click.option("--server", is_flag=True, help="Ignored: certificates are for clients and servers.")
@_file_options
@click.pass_context
def tool_identity_new(ctx: click.Context, server: bool, **values: object) -> None:
    """Deprecated alias of `identity new` writing private.key and public.crt by default."""
    del server  # every certificate carries both the clientAuth and the serverAuth usage
    options = _collect_options(ctx, **values)  # type: ignore[arg-type]
    _deprecation_note(ctx, "identity new")
    create_identity(ctx, options)


@tool_identity.command("of", cls=PflagCommand, context_settings=_HELP_OPTIONS)
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
        show_identity_of(ctx, argument, lambda: _read_file(argument))
