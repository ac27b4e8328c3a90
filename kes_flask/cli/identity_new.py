"""``identity new`` (and the legacy ``tool identity new``): an API key, optionally with files.

cli.md §4.2: a new Ed25519 API key; with ``--key``/``--cert`` also its X.509 certificate
(clientAuth + serverAuth) and the PKCS#8 private key, written atomically (0600 / 0644).
Decision C2: SAN, expiry, encrypt or force options without ``--key``/``--cert`` write the
legacy default files ``private.key``/``public.crt`` instead of failing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import click
from cryptography import x509

from kes_flask.auth import certs
from kes_flask.auth.identity import APIKey
from kes_flask.cli.common import (
    CommandError,
    Console,
    console,
    os_error_text,
    parse_go_duration,
    with_help_hint,
    write,
)

DEFAULT_KEY_FILE = "private.key"
DEFAULT_CERT_FILE = "public.crt"
DEFAULT_EXPIRY = timedelta(hours=720)


def program_name(ctx: click.Context) -> str:
    root = ctx.find_root()
    if root.command.name in ("identity", "tool") or not root.info_name:
        return "kes"
    return root.info_name


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
    raise CommandError(with_help_hint(ctx, message))


def _parse_ips(ctx: click.Context, values: Sequence[str]) -> list[str]:
    """IP SANs from repeated and comma-separated ``--ip`` values."""
    ips = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ips.append(str(ipaddress.ip_address(item)))
            except ValueError:
                reason = f"invalid string being converted to IP address: {item}"
                hint = with_help_hint(ctx, f'invalid argument "{value}" for "--ip" flag: {reason}')
                raise CommandError(hint) from None
    return ips


def _split_names(values: Sequence[str]) -> list[str]:
    parts = (part.strip() for value in values for part in value.split(","))
    return [part for part in parts if part]


def _new_identity_text(
    out: Console, program: str, api_key: APIKey, key_file: str | None, cert_file: str | None
) -> str:
    lines = ["Your API key:", "", f"   {out.bold(str(api_key))}", ""]
    lines += ["This is the only time it is shown. Keep it secret and secure!", ""]
    lines += ["Your Identity:", "", f"   {out.bold(api_key.identity)}", ""]
    lines += ["The identity is not a secret. It can be shared. Any peer"]
    lines += ["needs this identity in order to verify your API key.", ""]
    if cert_file:
        lines += [f"The generated TLS private key is stored at: {key_file}"]
        lines += [f"The generated TLS certificate is stored at: {cert_file}", ""]
    lines += ["The identity can be computed again via:", ""]
    lines += [f"    {program} identity of {api_key}"]
    lines += [f"    {program} identity of {cert_file}" if cert_file else ""]
    return "\n".join(lines) + "\n"


def _ask_new_password(out: Console) -> bytes:
    try:
        password = out.read_password("Enter password for private key:")
        confirmation = out.read_password("Confirm password for private key:")
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
        reason = os_error_text(err, key_file)
        raise CommandError(f"failed to create private key: {reason}") from None
    try:
        certs.write_certificate_file(cert_file, certs.certificate_pem(cert), options.force)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(key_file)
        reason = os_error_text(err, cert_file)
        raise CommandError(f"failed to create certificate: {reason}") from None


def create_identity(ctx: click.Context, options: NewIdentityOptions) -> None:
    """Generate an API key and, with key/cert files, its certificate; print the result."""
    out = console(ctx)
    api_key = APIKey.generate()
    if options.key_file and options.cert_file:
        cert = certs.identity_certificate(
            api_key, options.subject, options.ips, options.dns, options.expiry or DEFAULT_EXPIRY
        )
        if not options.force and os.path.lexists(options.key_file):
            raise CommandError("private key already exists. Use --force to overwrite it")
        if not options.force and os.path.lexists(options.cert_file):
            raise CommandError("certificate already exists. Use --force to overwrite it")
        password = _ask_new_password(out) if options.encrypt else None
        _write_identity_files(options, api_key, cert, password)
    write(_new_identity_text(out, program_name(ctx), api_key, options.key_file, options.cert_file))


def _needs_files(options: NewIdentityOptions) -> bool:
    return bool(options.encrypt or options.force or options.expiry or options.ips or options.dns)


def file_options(command: Callable[..., None]) -> Callable[..., None]:
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


def collect_options(
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
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    return options


def new_identity(ctx: click.Context, values: dict[str, object]) -> None:
    """`identity new`: the newest checks, then the legacy default files (Decision C2)."""
    options = collect_options(ctx, **values)  # type: ignore[arg-type]
    if options.key_file and not options.cert_file:
        reason = "private key file specified but no certificate file. Set the '--cert' flag"
        raise CommandError(reason)
    if options.cert_file and not options.key_file:
        reason = "certificate file specified but no private key file. Set the '--key' flag"
        raise CommandError(reason)
    if not options.key_file and _needs_files(options):
        click.echo(
            f"Note: using default files '{DEFAULT_KEY_FILE}' and '{DEFAULT_CERT_FILE}'", err=True
        )
        options = NewIdentityOptions(
            **{**vars(options), "key_file": DEFAULT_KEY_FILE, "cert_file": DEFAULT_CERT_FILE}
        )
    create_identity(ctx, options)
