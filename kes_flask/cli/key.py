"""`key` commands: create, import, info, ls, rm, encrypt, decrypt, dek (cli.md §5).

Messages and the machine forms (compact JSON without a trailing newline when no terminal is
attached) follow the Go ``kes`` CLI. Aliases of KES <= v0.17: list, delete, derive, describe
(Decision C8).
"""

from __future__ import annotations

import json
from base64 import b64encode

import click

from kes_flask.auth.identity import _decode_std_base64 as decode_base64
from kes_flask.cli.common import (
    CommandError,
    PflagGroup,
    color_option,
    console,
    enclave_option,
    format_time,
    go_time_text,
    insecure_option,
    json_option,
    with_help_hint,
    write,
    write_json,
)
from kes_flask.cli.connect import connect, failing_as
from kes_flask.cli.identity import print_list
from kes_flask.client.types import KeyInfo

_ALIASES = {"list": "ls", "delete": "rm", "derive": "dek", "describe": "info"}


def go_quote(text: str) -> str:
    """Go's ``%q`` for the names in messages (close enough beyond ASCII)."""
    return json.dumps(text, ensure_ascii=False)


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _base64_argument(ctx: click.Context, what: str, text: str) -> bytes:
    try:
        return decode_base64(text)
    except ValueError as err:
        raise CommandError(with_help_hint(ctx, f"invalid {what}: {err}")) from None


def _machine(value: dict[str, str]) -> None:
    write(json.dumps(value, separators=(",", ":")))  # no newline, as the Go CLI


class KeyGroup(PflagGroup):
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, _ALIASES.get(cmd_name, cmd_name))


@click.group(cls=KeyGroup, noun="key")
def key() -> None:
    """Manage cryptographic keys."""


@key.command("create")
@insecure_option
@enclave_option
@click.argument("names", nargs=-1, metavar="<name>...")
@click.pass_context
def key_create(ctx: click.Context, names: tuple[str, ...], insecure: bool, **_: object) -> None:
    """Create new crypto keys."""
    if not names:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    client = connect(ctx, insecure)
    for name in names:
        with failing_as(f"failed to create key {go_quote(name)}: "):
            client.create_key(name)


@key.command("import")
@insecure_option
@click.argument("arguments", nargs=-1, metavar="<name> <key>")
@click.pass_context
def key_import(ctx: click.Context, arguments: tuple[str, ...], insecure: bool) -> None:
    """Import a crypto key (32 bytes, base64)."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    if len(arguments) == 1:
        raise CommandError(with_help_hint(ctx, "no crypto key specified"))
    if len(arguments) > 2:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    name, material = arguments[0], _base64_argument(ctx, "key", arguments[1])
    client = connect(ctx, insecure)
    with failing_as(f"failed to import {go_quote(name)}: "):
        client.import_key(name, material, "AES256")


@key.command("info")
@insecure_option
@json_option
@color_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="<name>")
@click.pass_context
def key_info(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """Get information about a crypto key."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    if len(arguments) > 1:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    client = connect(ctx, insecure)
    with failing_as("failed to describe keys: "):
        raw = client.wire.describe_key(arguments[0])
    info = KeyInfo.from_json(arguments[0], raw)
    if as_json:
        body = {"name": info.name}
        if info.algorithm != "AES256":  # Go omits the enum's zero value
            body["algorithm"] = info.algorithm
        body["created_at"] = go_time_text(raw.get("created_at"))
        if info.created_by:
            body["created_by"] = info.created_by
        write_json(body)
        return
    lines = [("Name", info.name), ("Algorithm", info.algorithm)]
    lines += [("Date", format_time(info.created_at)), ("Owner", info.created_by)]
    write("\n".join(f"{label:<11} {value}" for label, value in lines))  # no final newline (sic)


@key.command("ls")
@insecure_option
@json_option
@color_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="[<pattern>]")
@click.pass_context
def key_ls(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, as_json: bool, **_: object
) -> None:
    """List crypto keys."""
    if len(arguments) > 1:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    pattern = arguments[0] if arguments else "*"
    client = connect(ctx, insecure)
    with failing_as("failed to list keys: "):
        names = client.list_keys(pattern)
    print_list(names, "Key", as_json)


@key.command("rm")
@insecure_option
@enclave_option
@click.argument("names", nargs=-1, metavar="<name>...")
@click.pass_context
def key_rm(ctx: click.Context, names: tuple[str, ...], insecure: bool, **_: object) -> None:
    """Delete crypto keys."""
    if not names:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    client = connect(ctx, insecure)
    for name in names:
        with failing_as(f"failed to remove key {go_quote(name)}: "):
            client.delete_key(name)


@key.command("encrypt")
@insecure_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="<name> <message>")
@click.pass_context
def key_encrypt(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, **_: object
) -> None:
    """Encrypt a message (the literal text of the argument)."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    if len(arguments) == 1:
        raise CommandError(with_help_hint(ctx, "no message specified"))
    if len(arguments) > 2:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    client = connect(ctx, insecure)
    with failing_as("failed to encrypt message: "):
        ciphertext = client.encrypt(arguments[0], arguments[1].encode())
    if console(ctx).is_terminal():
        write(f"\nciphertext: {_b64(ciphertext)}\n")
    else:
        _machine({"ciphertext": _b64(ciphertext)})


@key.command("decrypt")
@insecure_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="<name> <ciphertext> [<context>]")
@click.pass_context
def key_decrypt(
    ctx: click.Context, arguments: tuple[str, ...], insecure: bool, **_: object
) -> None:
    """Decrypt an encrypted message (base64 ciphertext and context)."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    if len(arguments) == 1:
        raise CommandError(with_help_hint(ctx, "no ciphertext specified"))
    if len(arguments) > 3:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    ciphertext = _base64_argument(ctx, "ciphertext", arguments[1])
    context = _base64_argument(ctx, "context", arguments[2]) if len(arguments) > 2 else b""
    client = connect(ctx, insecure)
    with failing_as("failed to decrypt ciphertext: "):
        plaintext = client.decrypt(arguments[0], ciphertext, context)
    if console(ctx).is_terminal():
        write(f"\nplaintext: {_b64(plaintext)}\n")
    else:
        _machine({"plaintext": _b64(plaintext)})


@key.command("dek")
@insecure_option
@enclave_option
@click.argument("arguments", nargs=-1, metavar="<name> [<context>]")
@click.pass_context
def key_dek(ctx: click.Context, arguments: tuple[str, ...], insecure: bool, **_: object) -> None:
    """Generate a new data encryption key."""
    if not arguments:
        raise CommandError(with_help_hint(ctx, "no key name specified"))
    if len(arguments) > 2:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    context = _base64_argument(ctx, "context", arguments[1]) if len(arguments) > 1 else b""
    client = connect(ctx, insecure)
    with failing_as("failed to derive key: "):
        dek = client.generate_key(arguments[0], context)
    if console(ctx).is_terminal():
        write(f"\nplaintext:  {_b64(dek.plaintext)}\nciphertext: {_b64(dek.ciphertext)}\n")
    else:
        _machine({"plaintext": _b64(dek.plaintext), "ciphertext": _b64(dek.ciphertext)})
