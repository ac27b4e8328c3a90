"""Certificates and PEM files: what clients derive from API keys, what `identity new` writes,
the dev-mode server certificate, and reading/writing (optionally encrypted) private keys.

Encrypted private keys use the legacy OpenSSL "traditional" PEM encryption (RFC 1423:
``Proc-Type``/``DEK-Info`` headers, key from ``EVP_BytesToKey`` with MD5) because that is the only
form Go KES and MinIO read (cli.md §4.2.4). ``cryptography`` cannot load it for PEM type
``PRIVATE KEY``, so that one format is en/decrypted here with its AES-CBC primitive.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kes_flask.auth.identity import APIKey

API_KEY_CERTIFICATE_VALIDITY = timedelta(days=90)
DEV_SERVER_CERTIFICATE_DAYS = 90

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n]*?)-----[ \t]*\r?\n(.*?)-----END \1-----", re.S)
_PEM_LINE_WIDTH = 64
_LEGACY_PEM_CIPHER = "AES-256-CBC"


# --- PEM blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PemBlock:
    type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    der: bytes = b""


class PemError(ValueError):
    """A PEM file whose structure is wrong (no blocks, or blocks of the wrong type)."""


def pem_blocks(data: bytes) -> list[PemBlock]:
    """All well-formed PEM blocks of ``data`` in order; malformed ones are skipped, as in Go."""
    blocks = []
    for match in _PEM_BLOCK.finditer(data):
        lines = match.group(2).decode("ascii", "replace").splitlines()
        headers: dict[str, str] = {}
        if lines and ":" in lines[0]:
            while lines and lines[0].strip():
                name, _, value = lines.pop(0).partition(":")
                headers[name.strip()] = value.strip()
        try:
            der = base64.b64decode("".join(line.strip() for line in lines), validate=True)
        except binascii.Error:
            continue
        blocks.append(PemBlock(match.group(1).decode("ascii", "replace"), headers, der))
    return blocks


def load_certificate_chain_pem(data: bytes) -> list[x509.Certificate]:
    """Certificates of a file that must hold only CERTIFICATE blocks (leaf first).

    Raises ``PemError`` (``no valid PEM data`` / ``unsupported PEM data block``) for the file's
    structure and ``ValueError`` for an unparsable certificate.
    """
    blocks = pem_blocks(data)
    if not blocks:
        raise PemError("no valid PEM data")
    if any(block.type != "CERTIFICATE" for block in blocks):
        raise PemError("unsupported PEM data block")
    return [x509.load_der_x509_certificate(block.der) for block in blocks]


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _encode_pem(block_type: str, der: bytes, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [f"-----BEGIN {block_type}-----"]
    if headers:
        lines += [f"{name}: {value}" for name, value in headers] + [""]
    lines += [body[i : i + _PEM_LINE_WIDTH] for i in range(0, len(body), _PEM_LINE_WIDTH)]
    lines.append(f"-----END {block_type}-----")
    return ("\n".join(lines) + "\n").encode("ascii")


# --- certificates --------------------------------------------------------------------------------


def _random_serial() -> int:
    """A positive random serial below 2**128, as Go KES and MinIO choose them."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _subject_alt_names(ips: Sequence[str], dns: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(str(ip))) for ip in ips]
    return names


def _certificate_builder(
    subject: str,
    validity: timedelta,
    usages: Sequence[x509.ObjectIdentifier],
    ips: Sequence[str] = (),
    dns: Sequence[str] = (),
) -> x509.CertificateBuilder:
    """A self-signed end-entity certificate template with Go's extension order and criticality."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    not_before = _now()
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .serial_number(_random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    alt_names = _subject_alt_names(ips, dns)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder


def client_certificate_for_api_key(key: APIKey) -> x509.Certificate:
    """The self-signed Ed25519 client certificate KES clients derive from an API key."""
    builder = _certificate_builder(
        key.identity, API_KEY_CERTIFICATE_VALIDITY, [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    return builder.public_key(key.private_key.public_key()).sign(key.private_key, None)


def identity_certificate(
    key: APIKey,
    subject: str | None,
    ips: Sequence[str],
    dns: Sequence[str],
    expiry: timedelta,
) -> x509.Certificate:
    """The certificate `identity new --key/--cert` writes: usable for TLS servers and clients."""
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    builder = _certificate_builder(subject or key.identity, expiry, usages, ips, dns)
    return builder.public_key(key.private_key.public_key()).sign(key.private_key, None)


def self_signed_server_certificate(
    ips: Sequence[str], dns: Sequence[str], days: int = DEV_SERVER_CERTIFICATE_DAYS
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """An ephemeral ECDSA P-256 server certificate for `server --dev` (cli.md §3.3)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    builder = _certificate_builder(
        "localhost", timedelta(days=days), [ExtendedKeyUsageOID.SERVER_AUTH], ips, dns
    )
    cert = builder.public_key(private_key.public_key()).sign(private_key, hashes.SHA256())
    return private_key, cert


# --- private keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LegacyCipher:
    algorithm: Callable[[bytes], CipherAlgorithm]
    key_size: int
    block_size: int


def _triple_des() -> Callable[[bytes], CipherAlgorithm]:
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        return algorithms.TripleDES
    return TripleDES


def _legacy_cipher(name: str) -> _LegacyCipher:
    """The RFC 1423 ciphers Go can decrypt; DES variants only ever for reading old files."""
    if name in ("AES-128-CBC", "AES-192-CBC", "AES-256-CBC"):
        return _LegacyCipher(algorithms.AES, int(name[4:7]) // 8, 16)
    if name in ("DES-EDE3-CBC", "DES-CBC"):
        return _LegacyCipher(_triple_des(), 24 if name == "DES-EDE3-CBC" else 8, 8)
    raise ValueError(f"unsupported private key encryption '{name}'")


def _evp_bytes_to_key(password: bytes, salt: bytes, size: int) -> bytes:
    """OpenSSL's EVP_BytesToKey with MD5 and one iteration (the RFC 1423 key derivation)."""
    derived, block = b"", b""
    while len(derived) < size:
        block = hashlib.md5(block + password + salt, usedforsecurity=False).digest()
        derived += block
    return derived[:size]


def _encrypt_legacy_pem(block_type: str, der: bytes, password: bytes) -> bytes:
    cipher_spec = _legacy_cipher(_LEGACY_PEM_CIPHER)
    iv = os.urandom(cipher_spec.block_size)
    key = _evp_bytes_to_key(password, iv[:8], cipher_spec.key_size)
    padding = cipher_spec.block_size - len(der) % cipher_spec.block_size
    encryptor = Cipher(cipher_spec.algorithm(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(der + bytes([padding]) * padding) + encryptor.finalize()
    headers = [("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", f"{_LEGACY_PEM_CIPHER},{iv.hex()}")]
    return _encode_pem(block_type, ciphertext, headers)


def _decrypt_legacy_pem(block: PemBlock, password: bytes) -> bytes:
    name, _, iv_hex = block.headers["DEK-Info"].partition(",")
    cipher_spec = _legacy_cipher(name.strip().upper())
    try:
        iv = bytes.fromhex(iv_hex.strip())
    except ValueError:
        raise ValueError("malformed DEK-Info header") from None
    if len(iv) != cipher_spec.block_size:
        raise ValueError("incorrect IV size in DEK-Info header")
    if not block.der or len(block.der) % cipher_spec.block_size:
        raise ValueError("encrypted private key is not a multiple of the cipher block size")
    key = _evp_bytes_to_key(password, iv[:8], cipher_spec.key_size)
    decryptor = Cipher(cipher_spec.algorithm(key), modes.CBC(iv)).decryptor()
    plaintext = decryptor.update(block.der) + decryptor.finalize()
    padding = plaintext[-1]
    padding_valid = 1 <= padding <= cipher_spec.block_size
    if not padding_valid or plaintext[-padding:] != bytes([padding] * padding):
        raise ValueError("incorrect password")
    return plaintext[:-padding]


def private_key_pem(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    """PKCS#8 ``PRIVATE KEY`` PEM, legacy-encrypted with AES-256-CBC when a password is given."""
    if password is None:
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    if not password:
        raise ValueError("password must not be empty")
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return _encrypt_legacy_pem("PRIVATE KEY", der, password)


def load_private_key_pem(data: bytes, password: bytes | None = None) -> PrivateKeyTypes:
    """The first private key of a PEM file (which may also hold certificates).

    Reads PKCS#8, PKCS#1 and SEC1 keys, PKCS#8 ``ENCRYPTED PRIVATE KEY`` and legacy ``DEK-Info``
    encrypted blocks. A password given for an unencrypted key is ignored, as Go KES does.
    """
    block = next(
        (b for b in pem_blocks(data) if b.type == "PRIVATE KEY" or b.type.endswith(" PRIVATE KEY")),
        None,
    )
    if block is None:
        raise ValueError("no PEM-encoded private key found")
    encrypted = "DEK-Info" in block.headers or block.type == "ENCRYPTED PRIVATE KEY"
    if not encrypted:
        return _load_der(block.der, encrypted=False)
    if not password:
        raise ValueError("private key is encrypted: password required")
    if block.type == "ENCRYPTED PRIVATE KEY":
        return _load_pkcs8_encrypted(block.der, password)
    return _load_der(_decrypt_legacy_pem(block, password), encrypted=True)


def _load_der(der: bytes, encrypted: bool) -> PrivateKeyTypes:
    try:
        return load_der_private_key(der, None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        if encrypted:  # a wrong password passes the padding check about once in 256 tries
            raise ValueError("incorrect password") from err
        raise ValueError(f"failed to parse private key: {err}") from err


def _load_pkcs8_encrypted(der: bytes, password: bytes) -> PrivateKeyTypes:
    try:
        return load_der_private_key(der, password)
    except UnsupportedAlgorithm as err:
        raise ValueError(f"unsupported private key encryption: {err}") from err
    except (ValueError, TypeError) as err:
        raise ValueError("incorrect password") from err


# --- files ---------------------------------------------------------------------------------------


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_exclusively(path: str, data: bytes, mode: int) -> None:
    """Create ``path`` (never following or replacing anything there) with exactly ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # exact mode, whatever the umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(path)
        raise


def _write_file(path: str, data: bytes, mode: int, force: bool) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not force:
        _create_exclusively(path, data, mode)
    else:
        temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
        _create_exclusively(temporary, data, mode)
        try:
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    _fsync_directory(directory)


def write_private_key_file(path: str, pem: bytes, force: bool) -> None:
    """Write a private key, mode 0600; replace an existing file (atomically) only with ``force``."""
    _write_file(path, pem, 0o600, force)


def write_certificate_file(path: str, pem: bytes, force: bool) -> None:
    """Write a certificate, mode 0644; replace an existing file (atomically) only with ``force``."""
    _write_file(path, pem, 0o644, force)
