"""Identities of clients: of TLS certificates and of ``kes:v1:`` API keys (api.md §6.1, §6.2).

An identity is the lowercase hex SHA-256 of a DER SubjectPublicKeyInfo. For certificates the raw
SPKI bytes are hashed exactly as they appear in the certificate (Go's ``RawSubjectPublicKeyInfo``);
re-encoding through a parser could change them for unusual encodings, and a short DER walk is
also far cheaper than a full parse, which matters because it runs once per TLS connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_SEQUENCE = 0x30
_INTEGER = 0x02
_EXPLICIT_TAG_0 = 0xA0  # [0] EXPLICIT Version in TBSCertificate

API_KEY_PREFIX = "kes:v1:"
_API_KEY_TYPE_ED25519 = 0x00
_API_KEY_LENGTH = 33  # type byte + 32-byte Ed25519 seed
_STD_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _read_tlv(der: bytes | memoryview, pos: int, limit: int) -> tuple[int, int, int]:
    """Return ``(tag, content_start, content_end)`` of the DER element starting at ``pos``."""
    if pos + 2 > limit:
        raise ValueError("malformed certificate: truncated DER element")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            raise ValueError("malformed certificate: invalid DER length")
        if der[pos] == 0:
            raise ValueError("malformed certificate: non-minimal DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        if length < 0x80:
            raise ValueError("malformed certificate: non-minimal DER length")
        pos += count
    if pos + length > limit:
        raise ValueError("malformed certificate: DER length exceeds its container")
    return tag, pos, pos + length


def _expect(der: bytes | memoryview, pos: int, limit: int, tag: int, what: str) -> tuple[int, int]:
    found, start, end = _read_tlv(der, pos, limit)
    if found != tag:
        raise ValueError(f"malformed certificate: unexpected DER tag 0x{found:02x} for {what}")
    return start, end


def certificate_identity(der: bytes | bytearray | memoryview) -> str:
    """Identity of a DER certificate: SHA-256 over its raw SubjectPublicKeyInfo element."""
    view = memoryview(der)
    limit = len(view)
    cert_start, cert_end = _expect(view, 0, limit, _SEQUENCE, "Certificate")
    if cert_end != limit:
        raise ValueError("malformed certificate: trailing data after the certificate")
    pos, tbs_end = _expect(view, cert_start, cert_end, _SEQUENCE, "TBSCertificate")
    tag, _, version_end = _read_tlv(view, pos, tbs_end)
    if tag == _EXPLICIT_TAG_0:
        pos = version_end
    _, pos = _expect(view, pos, tbs_end, _INTEGER, "serialNumber")
    for field in ("signature", "issuer", "validity", "subject"):
        _, pos = _expect(view, pos, tbs_end, _SEQUENCE, field)
    _, spki_end = _expect(view, pos, tbs_end, _SEQUENCE, "subjectPublicKeyInfo")
    return hashlib.sha256(view[pos:spki_end]).hexdigest()


def is_ca_certificate(der: bytes) -> bool:
    """Whether the certificate's BasicConstraints say CA:TRUE; such certificates never identify."""
    cert = x509.load_der_x509_certificate(bytes(der))
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def public_key_identity(public_key: PublicKeyTypes) -> str:
    """Identity of a public key: SHA-256 over its DER SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def _base64_error_offset(text: str) -> int:
    """Input offset reported for invalid standard base64, in the spirit of Go's error."""
    for index, char in enumerate(text):
        if char not in _BASE64_ALPHABET and char != "=":
            return index
    padding = text.find("=")
    if padding == -1:
        return len(text) - len(text) % 4
    return padding


def _decode_std_base64(text: str) -> bytes:
    """Strict standard base64 (padding required), with Go's ``illegal base64 data`` message."""
    if len(text) % 4 == 0 and _STD_BASE64.fullmatch(text):
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            pass
    raise ValueError(f"illegal base64 data at input byte {_base64_error_offset(text)}")


class APIKey:
    """A ``kes:v1:`` API key: an Ed25519 key pair whose text form carries the private seed."""

    __slots__ = ("_identity", "_private_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._identity = public_key_identity(private_key.public_key())

    @classmethod
    def generate(cls) -> APIKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> APIKey:
        """Parse ``kes:v1:<base64>`` or the bare base64 form (api.md §6.2)."""
        encoded = text.removeprefix(API_KEY_PREFIX)
        raw = _decode_std_base64(encoded)
        if len(raw) != _API_KEY_LENGTH:
            raise ValueError("kes: invalid API key: invalid length")
        if raw[0] != _API_KEY_TYPE_ED25519:
            raise ValueError("kes: invalid API key: unsupported type")
        return cls(Ed25519PrivateKey.from_private_bytes(raw[1:]))

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private_key

    def __str__(self) -> str:
        raw = bytes([_API_KEY_TYPE_ED25519]) + self._private_key.private_bytes_raw()
        return API_KEY_PREFIX + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"APIKey(identity={self._identity})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, APIKey):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)
