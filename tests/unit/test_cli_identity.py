"""The `identity` and legacy `tool identity` commands (cli.md §4), run through click's CliRunner."""

from __future__ import annotations

import errno
import hashlib
import re
import ssl
import stat
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kes_flask.auth import certs
from kes_flask.auth.identity import APIKey, certificate_identity
from kes_flask.cli.identity import Console, identity, parse_go_duration, tool

DATA = Path(__file__).resolve().parent.parent / "data" / "identity"
PLAY_CERTIFICATE = DATA / "play-min-io-root.crt"  # api.md §6.3; its identity is FIRST_IDENTITY
FIRST_KEY = "kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc"
FIRST_IDENTITY = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
FIRST_KEY_PKCS8 = (  # the private key of FIRST_KEY as PKCS#8 PEM (api.md §6.3)
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEID9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc\n"
    "-----END PRIVATE KEY-----\n"
)
API_KEY_LINE = re.compile(r"^   (kes:v1:[A-Za-z0-9+/]{44})$", re.M)
BOLD, RESET = "\x1b[1m", "\x1b[0m"


@click.group()
def kes() -> None:
    """A stand-in for the top-level command the lead wires."""


kes.add_command(identity)
kes.add_command(tool)


class FakePasswords:
    def __init__(self, *answers: str | OSError) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer


def run(
    args: Sequence[str],
    *,
    terminal: bool = False,
    styled: bool = False,
    passwords: FakePasswords | None = None,
    stdin: bytes | None = None,
) -> Result:
    console = Console(
        is_terminal=lambda: terminal,
        styled=lambda: styled,
        read_password=passwords or FakePasswords(),
    )
    return CliRunner().invoke(kes, list(args), obj=console, input=stdin, prog_name="kes")


def bordered(*lines: str) -> str:
    width = max(len(line.replace(BOLD, "").replace(RESET, "")) for line in lines)
    framed = [
        " " + line + " " * (width - len(line.replace(BOLD, "").replace(RESET, ""))) + " "
        for line in lines
    ]
    return "\n".join([" " * (width + 2), *framed, " " * (width + 2)]) + "\n"


def new_identity_text(key: str, ident: str, files: tuple[str, str] | None = None) -> str:
    text = (
        f"Your API key:\n\n   {key}\n\n"
        "This is the only time it is shown. Keep it secret and secure!\n\n"
        f"Your Identity:\n\n   {ident}\n\n"
        "The identity is not a secret. It can be shared. Any peer\n"
        "needs this identity in order to verify your API key.\n\n"
    )
    if files:
        text += f"The generated TLS private key is stored at: {files[0]}\n"
        text += f"The generated TLS certificate is stored at: {files[1]}\n\n"
    text += f"The identity can be computed again via:\n\n    kes identity of {key}\n"
    return text + (f"    kes identity of {files[1]}\n" if files else "\n")


def api_key_of(output: str) -> APIKey:
    match = API_KEY_LINE.search(output)
    assert match, output
    return APIKey.parse(match.group(1))


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cert_identity(path: Path) -> str:
    return certificate_identity(load_cert(path).public_bytes(Encoding.DER))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_certificate(private_key, subject: str, issuer: tuple[str, object] | None = None) -> bytes:
    """A PEM certificate for ``private_key``: self-signed, or signed by ``issuer`` (name, key)."""
    issuer_name, issuer_key = issuer or (subject, private_key)
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .public_key(private_key.public_key())
        .sign(
            issuer_key,
            None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256(),
        )
    )
    return cert.public_bytes(Encoding.PEM)


def spki_sha256(private_key) -> str:
    """SHA-256 of the public key's SubjectPublicKeyInfo as cryptography encodes it."""
    spki = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- identity [KEY | FILE] -----------------------------------------------------------------------


def test_bare_identity_prints_a_new_api_key_without_newline() -> None:
    result = run(["identity"])
    assert result.exit_code == 0 and result.stderr == ""
    assert re.fullmatch(r"kes:v1:A[A-Za-z0-9+/]{43}", result.stdout)
    APIKey.parse(result.stdout)


def test_bare_identity_on_a_terminal() -> None:
    result = run(["identity"], terminal=True, styled=True)
    key = APIKey.parse(re.search(r"kes:v1:[A-Za-z0-9+/]{44}", result.stdout).group(0))
    assert result.stdout == bordered(
        "Your API key:",
        "",
        f"   {BOLD}{key}{RESET}",
        "",
        "This is the only time it is shown. Keep it secret and secure!",
        "",
        "Your API key's identity:",
        "",
        f"   {BOLD}{key.identity}{RESET}",
        "",
        "The identity is not a secret and can be shared securely.",
        "Peers need your identity in order to verify your API key.",
        "",
        "This identity can be re-computed again via:",
        "",
        f"  $ kes identity {key}",
    )
    assert result.stdout.splitlines()[1] == " Your API key:" + " " * 56  # width 68 + 2


@pytest.mark.parametrize("text", [FIRST_KEY, FIRST_KEY.removeprefix("kes:v1:")])
def test_bare_identity_of_an_api_key(text: str) -> None:
    assert run(["identity", text]).stdout == FIRST_IDENTITY
    assert run(["identity", text], terminal=True).stdout == bordered(
        "Identity:",
        "",
        f"   {FIRST_IDENTITY}",
        "",
        "An identity is a fingerprint of your API key",
        "or certificate and can be shared securely.",
    )


def test_bare_identity_of_a_certificate_file() -> None:
    assert run(["identity", str(PLAY_CERTIFICATE)]).stdout == FIRST_IDENTITY


def test_bare_identity_of_a_private_key_file_prints_its_api_key(in_tmp: Path) -> None:
    (in_tmp / "client.key").write_text(FIRST_KEY_PKCS8)
    assert run(["identity", "client.key"]).stdout == FIRST_KEY
    assert run(["identity", "client.key"], terminal=True).stdout == bordered(
        "Your API key:",
        "",
        f"   {FIRST_KEY}",
        "",
        "It corresponds to the private key in: client.key.",
        "Keep it secret and secure!",
    )


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["missing.crt"], {}, "open missing.crt: no such file or directory"),
        (["junk"], {"junk": "hello"}, "'junk' contains no valid PEM certificate or private key"),
        (["a", "b"], {}, "too many arguments"),
        (["-x"], {}, "unknown shorthand flag: 'x' in -x"),
        (["--bogus"], {}, "unknown flag: --bogus"),
    ],
)
def test_bare_identity_errors(in_tmp: Path, args, files, message: str) -> None:
    for name, content in files.items():
        (in_tmp / name).write_text(content)
    result = run(["identity", *args])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")


def test_bare_identity_rejects_sec1_ec_keys(in_tmp: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    (in_tmp / "ec.key").write_bytes(pem)
    result = run(["identity", "ec.key"])
    unsupported = "contains unsupported private key. Only ed25519 private keys are supported"
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"Error: 'ec.key' {unsupported}\n",
    )


def test_bare_identity_rejects_non_ed25519_pkcs8_keys(in_tmp: Path) -> None:
    _, cert = certs.self_signed_server_certificate(["127.0.0.1"], [])
    key, _ = certs.self_signed_server_certificate(["127.0.0.1"], [])
    (in_tmp / "ec.pem").write_bytes(certs.private_key_pem(key) + certs.certificate_pem(cert))
    result = run(["identity", "ec.pem"])
    unsupported = "contains unsupported private key. Only ed25519 private keys are supported"
    assert result.stderr == f"Error: 'ec.pem' {unsupported}\n" and result.exit_code == 1


# --- identity new --------------------------------------------------------------------------------


def test_identity_new_without_files(in_tmp: Path) -> None:
    result = run(["identity", "new", "ignored-subject"])
    assert result.exit_code == 0 and result.stderr == ""
    key = api_key_of(result.stdout)
    assert result.stdout == new_identity_text(str(key), key.identity)
    assert list(in_tmp.iterdir()) == []


def test_identity_new_bold_when_styled() -> None:
    result = run(["identity", "new"], terminal=True, styled=True)
    key = APIKey.parse(re.search(r"kes:v1:[A-Za-z0-9+/]{44}", result.stdout).group(0))
    expected = new_identity_text(str(key), key.identity)
    expected = expected.replace(f"   {key}\n", f"   {BOLD}{key}{RESET}\n", 1)
    expected = expected.replace(f"   {key.identity}\n", f"   {BOLD}{key.identity}{RESET}\n")
    assert result.stdout == expected


def test_identity_new_with_files(in_tmp: Path) -> None:
    args = ["identity", "new", "--key", "server.key", "--cert", "server.cert"]
    result = run([*args, "--ip", "127.0.0.1", "--dns", "localhost"])
    assert result.exit_code == 0 and result.stderr == ""
    key = api_key_of(result.stdout)
    assert result.stdout == new_identity_text(str(key), key.identity, ("server.key", "server.cert"))
    assert mode(in_tmp / "server.key") == 0o600 and mode(in_tmp / "server.cert") == 0o644
    private_key = certs.load_private_key_pem((in_tmp / "server.key").read_bytes())
    assert private_key.private_bytes_raw() == key.private_key.private_bytes_raw()
    cert = load_cert(in_tmp / "server.cert")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == key.identity
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=720)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert_identity(in_tmp / "server.cert") == key.identity
    assert run(["identity", "of", "server.cert"]).stdout == key.identity


def test_identity_new_subject_lists_and_expiry_alias(in_tmp: Path) -> None:
    args = ["identity", "new", "MyApp", "--key=c.key", "--cert=c.crt", "-t", "1h30m"]
    result = run(
        [*args, "--ip", "10.0.0.1,10.0.0.2", "--ip", "::1", "--dns", "a.example,b.example"]
    )
    assert result.exit_code == 0, result.stderr
    cert = load_cert(in_tmp / "c.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "MyApp"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=1, minutes=30)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["a.example", "b.example"]
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert ips == ["10.0.0.1", "10.0.0.2", "::1"]


def test_identity_new_refuses_to_overwrite_without_force(in_tmp: Path) -> None:
    args = ["identity", "new", "--key", "k.pem", "--cert", "c.pem"]
    (in_tmp / "k.pem").write_text("old key")
    result = run(args)
    assert result.exit_code == 1
    assert result.stderr == "Error: private key already exists. Use --force to overwrite it\n"
    (in_tmp / "k.pem").unlink()
    (in_tmp / "c.pem").write_text("old cert")
    result = run(args)
    assert result.stderr == "Error: certificate already exists. Use --force to overwrite it\n"
    assert not (in_tmp / "k.pem").exists() and (in_tmp / "c.pem").read_text() == "old cert"
    (in_tmp / "k.pem").write_text("old key")
    result = run([*args, "--force"])
    assert result.exit_code == 0 and result.stderr == ""
    assert cert_identity(in_tmp / "c.pem") == api_key_of(result.stdout).identity
    assert mode(in_tmp / "k.pem") == 0o600 and mode(in_tmp / "c.pem") == 0o644


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--key", "k"],
            "private key file specified but no certificate file. Set the '--cert' flag",
        ),
        (
            ["--cert", "c"],
            "certificate file specified but no private key file. Set the '--key' flag",
        ),
        (["a", "b"], "too many arguments. See 'kes identity new --help'"),
        (["--bogus"], "unknown flag: --bogus. See 'kes identity new --help'"),
        (["-x"], "unknown shorthand flag: 'x' in -x. See 'kes identity new --help'"),
        (["--key"], "flag needs an argument: --key. See 'kes identity new --help'"),
        (
            ["--expiry", "abc"],
            'invalid argument "abc" for "--expiry" flag: time: invalid duration "abc". '
            "See 'kes identity new --help'",
        ),
        (
            ["--ip", "1.2.3.4,x"],
            'invalid argument "1.2.3.4,x" for "--ip" flag: '
            "invalid string being converted to IP address: x. See 'kes identity new --help'",
        ),
    ],
)
def test_identity_new_errors(in_tmp: Path, args: list[str], message: str) -> None:
    result = run(["identity", "new", *args])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")
    assert list(in_tmp.iterdir()) == []


def test_seed_identity_new_with_ip_falls_back_to_default_files(in_tmp: Path) -> None:
    result = run(["identity", "new", "--ip", "127.0.0.1", "localhost"])
    assert result.exit_code == 0
    assert result.stderr == "Note: using default files 'private.key' and 'public.crt'\n"
    key = api_key_of(result.stdout)
    assert result.stdout == new_identity_text(str(key), key.identity, ("private.key", "public.crt"))
    assert mode(in_tmp / "private.key") == 0o600 and mode(in_tmp / "public.crt") == 0o644
    cert = load_cert(in_tmp / "public.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == []  # the subject is not a SAN
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert_identity(in_tmp / "public.crt") == key.identity


@pytest.mark.parametrize("option", [["--dns", "localhost"], ["--expiry", "8760h"], ["-f"]])
def test_other_file_options_fall_back_to_default_files(in_tmp: Path, option: list[str]) -> None:
    result = run(["identity", "new", *option])
    assert result.exit_code == 0 and result.stderr.startswith("Note: using default files")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["private.key", "public.crt"]


def test_identity_new_encrypt_round_trip(in_tmp: Path) -> None:
    passwords = FakePasswords("pa55word", "pa55word")
    args = ["identity", "new", "--encrypt", "--key", "enc.key", "--cert", "enc.crt"]
    result = run(args, passwords=passwords)
    assert result.exit_code == 0 and result.stderr == ""
    assert passwords.prompts == [
        "Enter password for private key:",
        "Confirm password for private key:",
    ]
    pem = (in_tmp / "enc.key").read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC," in pem
    key = api_key_of(result.stdout)
    loaded = certs.load_private_key_pem(pem, b"pa55word")
    assert loaded.private_bytes_raw() == key.private_key.private_bytes_raw()
    with pytest.raises(ValueError, match=r"^incorrect password$"):
        certs.load_private_key_pem(pem, b"wrong")
    assert mode(in_tmp / "enc.key") == 0o600


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (("one", "two"), "passwords don't match"),
        (("", ""), "password must not be empty"),
        (
            (OSError(errno.ENOTTY, "Inappropriate ioctl for device"),),
            "inappropriate ioctl for device",
        ),
    ],
)
def test_identity_new_encrypt_errors(in_tmp: Path, answers: tuple, message: str) -> None:
    args = ["identity", "new", "--encrypt", "--key", "k", "--cert", "c"]
    result = run(args, passwords=FakePasswords(*answers))
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")
    assert list(in_tmp.iterdir()) == []


def test_identity_new_reports_write_errors(in_tmp: Path) -> None:
    result = run(["identity", "new", "--key", "k.pem", "--cert", "missing-dir/c.pem"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: failed to create certificate: open missing-dir/c.pem: no such file or directory\n"
    )
    assert not (in_tmp / "k.pem").exists()  # the key is removed again


def test_written_certificate_works_for_tls_server_and_client(in_tmp: Path) -> None:
    args = ["identity", "new", "--ip", "127.0.0.1", "--dns", "localhost"]
    result = run([*args, "--key", "private.key", "--cert", "public.crt"])
    assert result.exit_code == 0
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain("public.crt", "private.key")
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_cert_chain("public.crt", "private.key")
    for context in (server_context, client_context):
        context.load_verify_locations("public.crt")  # the self-signed leaf is its own anchor
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    for hostname in ("localhost", "127.0.0.1"):
        peer = _handshake(client_context, server_context, hostname)
        assert certificate_identity(peer) == api_key_of(result.stdout).identity


def _handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext, host: str) -> bytes:
    """Run a TLS handshake in memory; return the client certificate the server received."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=host)
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    pending = {id(client): client, id(server): server}
    for _ in range(10):
        for endpoint in list(pending.values()):
            try:
                endpoint.do_handshake()
                del pending[id(endpoint)]
            except ssl.SSLWantReadError:
                pass
        if not pending:
            break
    assert not pending
    return server.getpeercert(binary_form=True)


# --- identity of ---------------------------------------------------------------------------------


def test_identity_of_certificate_file() -> None:
    result = run(["identity", "of", str(PLAY_CERTIFICATE)])
    assert (result.exit_code, result.stdout, result.stderr) == (0, FIRST_IDENTITY, "")


@pytest.mark.parametrize(
    "new_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["p256", "p384", "rsa2048", "ed25519"],
)
def test_identity_of_generated_certificate_file(in_tmp: Path, new_key) -> None:
    key = new_key()
    (in_tmp / "cert.pem").write_bytes(make_certificate(key, "localhost"))
    result = run(["identity", "of", "cert.pem"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, spki_sha256(key), "")


def test_identity_of_a_chain_file_is_the_leaf_identity(in_tmp: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ed25519.Ed25519PrivateKey.generate()
    leaf = make_certificate(leaf_key, "leaf", issuer=("ca", ca_key))
    (in_tmp / "chain.pem").write_bytes(leaf + make_certificate(ca_key, "ca"))
    result = run(["identity", "of", "chain.pem"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, spki_sha256(leaf_key), "")
    assert spki_sha256(leaf_key) != spki_sha256(ca_key)


def test_identity_of_api_key_and_terminal_form() -> None:
    assert run(["identity", "of", FIRST_KEY]).stdout == FIRST_IDENTITY
    result = run(["identity", "of", FIRST_KEY, "ignored"], terminal=True)
    assert result.stdout == f"Identity:\n\n   {FIRST_IDENTITY}\n"
    styled = run(["identity", "of", FIRST_KEY], terminal=True, styled=True)
    assert styled.stdout == f"Identity:\n\n   {BOLD}{FIRST_IDENTITY}{RESET}\n"


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        ([], {}, "no API key or certificate specified. See 'kes identity of --help'"),
        (["kes:v1:AAAA"], {}, "kes: invalid API key: invalid length"),
        (
            ["kes:v1:sbDvZFqUPFFwxRS4EkuoEb2nyyInkdKSUEYHXFHeTouW"],
            {},
            "kes: invalid API key: unsupported type",
        ),
        (["nope.crt"], {}, "open nope.crt: no such file or directory"),
        (
            ["empty.crt"],
            {"empty.crt": ""},
            "failed to parse certificate in 'empty.crt': https: no valid PEM data",
        ),
        (
            ["both.pem"],
            {"both.pem": FIRST_KEY_PKCS8 + PLAY_CERTIFICATE.read_text()},
            "failed to parse certificate in 'both.pem': https: unsupported PEM data block",
        ),
    ],
)
def test_identity_of_errors(in_tmp: Path, args, files, message: str) -> None:
    for name, content in files.items():
        (in_tmp / name).write_text(content)
    result = run(["identity", "of", *args])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")


# --- tool identity (legacy) ----------------------------------------------------------------------


def test_seed_tool_identity_new_and_of(in_tmp: Path) -> None:
    args = ["tool", "identity", "new", "MinIO", "--key=minio.key", "--cert=minio.cert"]
    result = run([*args, "--time=8760h"])
    assert result.exit_code == 0, result.stderr
    assert "deprecated" in result.stderr
    key = api_key_of(result.stdout)
    cert = load_cert(in_tmp / "minio.cert")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "MinIO"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=8760)
    of = run(["tool", "identity", "of", "minio.cert"])
    assert of.stdout == key.identity and "deprecated" in of.stderr
    from_stdin = run(["tool", "identity", "of"], stdin=(in_tmp / "minio.cert").read_bytes())
    assert from_stdin.stdout == key.identity
    dash = run(["tool", "identity", "of", "-"], stdin=(in_tmp / "minio.cert").read_bytes())
    assert dash.stdout == key.identity


def test_tool_identity_new_uses_legacy_default_files(in_tmp: Path) -> None:
    result = run(["tool", "identity", "new", "--server", "--ip", "127.0.0.1", "MinIO"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == ["private.key", "public.crt"]


def test_tool_identity_of_rejects_other_hashes() -> None:
    result = run(["tool", "identity", "of", "--hash", "SHA-512", str(PLAY_CERTIFICATE)])
    assert result.exit_code == 1
    assert result.stderr == "Error: unsupported hash 'SHA-512': identities are always SHA-256\n"
    ok = run(["tool", "identity", "of", "--hash", "SHA-256", str(PLAY_CERTIFICATE)])
    assert ok.stdout == FIRST_IDENTITY


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", timedelta(hours=720)),
        ("8760h", timedelta(hours=8760)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("0", timedelta(0)),
        ("-2m", timedelta(minutes=-2)),
        ("300ms", timedelta(milliseconds=300)),
    ],
)
def test_parse_go_duration(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
    ],
)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_go_duration(text)
