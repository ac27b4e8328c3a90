"""Ciphertext layouts: the current raw one and the two legacy envelopes KES still decrypts.

Current (api.md §8.3): ``sealed ‖ IV(16) ‖ nonce(12)`` where ``sealed`` is AEAD output with its
16-byte tag. Legacy envelopes (§8.4) carry the same three parts as fields. An envelope that
does not parse is *not* an error: the bytes are then decrypted as a raw ciphertext (§8.5), which
keeps raw ciphertexts that happen to start with ``0x95`` or ``{`` working.
"""

from __future__ import annotations

from typing import NamedTuple

from . import gojson
from .errors import DecryptionError

IV_SIZE = 16
NONCE_SIZE = 12
RANDOM_SIZE = IV_SIZE + NONCE_SIZE
TAG_SIZE = 16
OVERHEAD = TAG_SIZE + RANDOM_SIZE

_MSGPACK_FIXARRAY5 = 0x95
_JSON_OBJECT_START = 0x7B  # "{"

_MSGPACK_STR_LENGTH_SIZES = {0xD9: 1, 0xDA: 2, 0xDB: 4}  # str8, str16, str32 (+ fixstr)
_MSGPACK_BIN_LENGTH_SIZES = {0xC4: 1, 0xC5: 2, 0xC6: 4}  # bin8, bin16, bin32
_MSGPACK_ALGORITHMS = frozenset(
    {b"AES256-GCM_SHA256", b"XCHACHA20-POLY1305", b"AES256", b"ChaCha20"}
)
_JSON_ALGORITHMS = frozenset({"AES-256-GCM-HMAC-SHA-256", "ChaCha20Poly1305"})
_JSON_FIELDS = {
    "aead": gojson.FieldKind.STRING,
    "id": gojson.FieldKind.STRING,
    "iv": gojson.FieldKind.BYTES,
    "nonce": gojson.FieldKind.BYTES,
    "bytes": gojson.FieldKind.BYTES,
}


class RawParts(NamedTuple):
    sealed: bytes
    iv: bytes
    nonce: bytes


def split(ciphertext: bytes) -> RawParts:
    """Split a ciphertext of any supported format; ``DecryptionError`` if it is too short."""
    parts = _parse_legacy(ciphertext)
    if parts is not None:
        if not parts.sealed:
            raise DecryptionError("ciphertext is not authentic")
        return parts
    if len(ciphertext) <= RANDOM_SIZE:
        raise DecryptionError("ciphertext is not authentic")
    nonce_start = len(ciphertext) - NONCE_SIZE
    iv_start = nonce_start - IV_SIZE
    return RawParts(
        ciphertext[:iv_start], ciphertext[iv_start:nonce_start], ciphertext[nonce_start:]
    )


def _parse_legacy(ciphertext: bytes) -> RawParts | None:
    """The parts of a legacy envelope, or ``None`` if ``ciphertext`` is not one."""
    if not ciphertext:
        return None
    first = ciphertext[0]
    if first == _MSGPACK_FIXARRAY5:
        return _parse_msgpack(ciphertext)
    if first == _JSON_OBJECT_START:
        return _parse_json(ciphertext)
    return None


class _Malformed(Exception):
    pass


def _parse_msgpack(data: bytes) -> RawParts | None:
    """Parse ``[algorithm str, key id str, iv bin16, nonce bin12, sealed bin]`` (KES 2022-2024)."""
    try:
        algorithm, pos = _read_msgpack_str(data, 1)
        _key_id, pos = _read_msgpack_str(data, pos)
        iv, pos = _read_msgpack_bin(data, pos)
        nonce, pos = _read_msgpack_bin(data, pos)
        sealed, pos = _read_msgpack_bin(data, pos)
    except _Malformed:
        return None
    if pos != len(data) or len(iv) != IV_SIZE or len(nonce) != NONCE_SIZE:
        return None
    if algorithm not in _MSGPACK_ALGORITHMS:
        return None
    return RawParts(sealed, iv, nonce)


def _read_msgpack_str(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise _Malformed
    lead = data[pos]
    if 0xA0 <= lead <= 0xBF:  # fixstr
        return _read_exact(data, pos + 1, lead & 0x1F)
    return _read_sized(data, pos, _MSGPACK_STR_LENGTH_SIZES)


def _read_msgpack_bin(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise _Malformed
    return _read_sized(data, pos, _MSGPACK_BIN_LENGTH_SIZES)


def _read_sized(data: bytes, pos: int, length_sizes: dict[int, int]) -> tuple[bytes, int]:
    size_of_length = length_sizes.get(data[pos])
    if size_of_length is None:
        raise _Malformed
    start = pos + 1 + size_of_length
    if start > len(data):
        raise _Malformed
    return _read_exact(data, start, int.from_bytes(data[pos + 1 : start], "big"))


def _read_exact(data: bytes, start: int, length: int) -> tuple[bytes, int]:
    end = start + length
    if end > len(data):
        raise _Malformed
    return data[start:end], end


def _parse_json(data: bytes) -> RawParts | None:
    """Parse ``{"aead", "id", "iv", "nonce", "bytes"}`` (KES 2020-2022) with Go's JSON rules."""
    try:
        fields = gojson.decode_struct(gojson.parse(bytes(data)), _JSON_FIELDS)
    except gojson.GoJSONError:
        return None
    iv, nonce = fields.get("iv", b""), fields.get("nonce", b"")
    if fields.get("aead") not in _JSON_ALGORITHMS:
        return None
    if len(iv) != IV_SIZE or len(nonce) != NONCE_SIZE:
        return None
    return RawParts(fields.get("bytes", b""), iv, nonce)
