"""Wire-format coding of the one protobuf message KES stores: ``miniohq.kms.KeyVersion``.

Hand-written because the message is tiny and parity matters more than generality: decoding
follows protobuf-go (unknown fields and fields with an unexpected wire type are skipped, a
repeated sub-message is merged, the last scalar wins, ``CreatedBy`` must be valid UTF-8), and
encoding writes fields in number order with proto3 zero values omitted, as Go does.

    KeyVersion { SecretKey Key = 1; HMACKey HMACKey = 2;
                 google.protobuf.Timestamp CreatedAt = 3; string CreatedBy = 4; }
    SecretKey  { bytes Key = 1; uint32 Type = 2; }   HMACKey { bytes Key = 1; uint32 Hash = 2; }
    Timestamp  { int64 seconds = 1; int32 nanos = 2; }
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

_VARINT, _FIXED64, _BYTES, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
_MAX_FIELD_NUMBER = (1 << 29) - 1
_MAX_FIELD_NUMBER_IN_GROUP = (1 << 31) - 1  # protobuf-go checks less when skipping groups
_MAX_GROUP_DEPTH = 10_000
_UINT32_MASK = (1 << 32) - 1
_UINT64_MASK = (1 << 64) - 1


class ProtobufError(ValueError):
    """The bytes are not a valid encoding of the message."""


class KeyMessage(NamedTuple):
    """``SecretKey`` (kind = type: 1 AES256, 2 ChaCha20) or ``HMACKey`` (kind = hash: 1 SHA256)."""

    key: bytes = b""
    kind: int = 0


class KeyVersionMessage(NamedTuple):
    secret_key: KeyMessage | None
    hmac_key: KeyMessage | None
    created_at: tuple[int, int] | None  # (seconds, nanos) exactly as stored
    created_by: str = ""


def encode_key_version(message: KeyVersionMessage) -> bytes:
    """Encode byte-for-byte like Go's ``proto.Marshal``; ``ValueError`` if a part is missing."""
    if message.secret_key is None or message.hmac_key is None or message.created_at is None:
        raise ValueError("a key version needs a secret key, an HMAC key and a creation time")
    out = bytearray()
    _put_length_delimited(out, 1, _encode_key(message.secret_key))
    _put_length_delimited(out, 2, _encode_key(message.hmac_key))
    seconds, nanos = message.created_at
    timestamp = bytearray()
    _put_varint_field(timestamp, 1, seconds)
    _put_varint_field(timestamp, 2, nanos)
    _put_length_delimited(out, 3, timestamp)
    if message.created_by:
        _put_length_delimited(out, 4, message.created_by.encode("utf-8"))
    return bytes(out)


def decode_key_version(data: bytes) -> KeyVersionMessage:
    """Decode like protobuf-go's ``proto.Unmarshal``; ``ProtobufError`` if malformed."""
    secret_key: KeyMessage | None = None
    hmac_key: KeyMessage | None = None
    created_at: tuple[int, int] | None = None
    created_by = ""
    for number, wire_type, value in _fields(data):
        if wire_type != _BYTES or not isinstance(value, bytes):
            continue  # every known field is length-delimited; others are unknown fields
        if number == 1:
            secret_key = _decode_key(value, secret_key or KeyMessage())
        elif number == 2:
            hmac_key = _decode_key(value, hmac_key or KeyMessage())
        elif number == 3:
            created_at = _decode_timestamp(value, created_at or (0, 0))
        elif number == 4:
            try:
                created_by = value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ProtobufError("CreatedBy is not valid UTF-8") from err
    return KeyVersionMessage(secret_key, hmac_key, created_at, created_by)


def _encode_key(key: KeyMessage) -> bytearray:
    out = bytearray()
    if key.key:
        _put_length_delimited(out, 1, key.key)
    _put_varint_field(out, 2, key.kind)
    return out


def _decode_key(data: bytes, merged: KeyMessage) -> KeyMessage:
    key, kind = merged
    for number, wire_type, value in _fields(data):
        if number == 1 and wire_type == _BYTES and isinstance(value, bytes):
            key = value
        elif number == 2 and wire_type == _VARINT and isinstance(value, int):
            kind = value & _UINT32_MASK
    return KeyMessage(key, kind)


def _decode_timestamp(data: bytes, merged: tuple[int, int]) -> tuple[int, int]:
    seconds, nanos = merged
    for number, wire_type, value in _fields(data):
        if wire_type != _VARINT or not isinstance(value, int):
            continue
        if number == 1:
            seconds = _signed(value, 64)
        elif number == 2:
            nanos = _signed(value & _UINT32_MASK, 32)
    return seconds, nanos


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _put_varint(out: bytearray, value: int) -> None:
    value &= _UINT64_MASK  # negative numbers are sent as 64-bit two's complement
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_varint_field(out: bytearray, number: int, value: int) -> None:
    if value:  # proto3 omits zero scalars
        _put_varint(out, number << 3 | _VARINT)
        _put_varint(out, value)


def _put_length_delimited(out: bytearray, number: int, value: bytes | bytearray) -> None:
    _put_varint(out, number << 3 | _BYTES)
    _put_varint(out, len(value))
    out += value


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes | None]]:
    """Yield (number, wire type, value) for each field: an int, bytes, or None (fixed, group)."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER or wire_type == _END_GROUP:
            raise ProtobufError("invalid field tag")
        value, pos = _read_value(data, pos, number, wire_type)
        yield number, wire_type, value


def _read_value(
    data: bytes, pos: int, number: int, wire_type: int
) -> tuple[int | bytes | None, int]:
    if wire_type == _VARINT:
        return _read_varint(data, pos)
    if wire_type == _BYTES:
        length, pos = _read_varint(data, pos)
        end = pos + length
        if end > len(data):
            raise ProtobufError("truncated length-delimited field")
        return data[pos:end], end
    if wire_type in (_FIXED32, _FIXED64):
        end = pos + (4 if wire_type == _FIXED32 else 8)
        if end > len(data):
            raise ProtobufError("truncated fixed-size field")
        return None, end
    if wire_type == _START_GROUP:
        return None, _skip_group(data, pos, number)
    raise ProtobufError(f"invalid wire type {wire_type}")


def _skip_group(data: bytes, pos: int, number: int) -> int:
    """Skip a (deprecated) group up to its matching end tag, as protobuf-go does for unknowns."""
    open_groups = [number]
    while open_groups:
        tag, pos = _read_varint(data, pos)
        inner_number, wire_type = tag >> 3, tag & 7
        if not 1 <= inner_number <= _MAX_FIELD_NUMBER_IN_GROUP:
            raise ProtobufError("invalid field tag in group")
        if wire_type == _END_GROUP:
            if open_groups.pop() != inner_number:
                raise ProtobufError("mismatched end of group")
        elif wire_type == _START_GROUP:
            if len(open_groups) > _MAX_GROUP_DEPTH:
                raise ProtobufError("groups nested too deeply")
            open_groups.append(inner_number)
        else:
            _, pos = _read_value(data, pos, inner_number, wire_type)
    return pos


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint of at most 10 bytes (the 10th may only be 0 or 1)."""
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise ProtobufError("varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
    raise ProtobufError("varint overflows 64 bits")  # unreachable: the 10th byte returns
