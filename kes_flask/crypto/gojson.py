"""The part of Go's ``encoding/json`` and ``encoding/base64`` that legacy KES values depend on.

Legacy stored keys and ciphertext envelopes are JSON written by Go and read back by Go's decoder
in the newest KES. Parity means accepting and rejecting what that decoder does when it fills a
flat struct of string, ``[]byte`` and ``time.Time`` fields:

* field names match case-insensitively, unknown fields are ignored, the last duplicate wins;
* ``null`` leaves a field unset (a ``[]byte`` becomes empty); any other type mismatch fails;
* ``[]byte`` is padded standard base64 (``\\r``/``\\n`` ignored);
* ``time.Time`` sees the *raw* JSON string, so any escape sequence in it makes parsing fail;
* invalid UTF-8 and lone surrogates in strings become U+FFFD, one per byte.
"""

from __future__ import annotations

import binascii
import enum
import json
import re
from collections.abc import Callable, Mapping
from json import scanner as json_scanner
from typing import Any

from .timestamp import Timestamp


class GoJSONError(ValueError):
    """The input is not what Go's decoder would accept."""


class FieldKind(enum.Enum):
    STRING = "string"
    BYTES = "[]byte"
    TIME = "time.Time"


_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


def base64_decode(text: bytes | str) -> bytes:
    """Decode like Go's ``base64.StdEncoding``: padding required, CR/LF skipped, else strict."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError as err:
            raise GoJSONError("illegal base64 data") from err
    if b"\r" in text or b"\n" in text:
        text = text.replace(b"\r", b"").replace(b"\n", b"")
    if _BASE64.fullmatch(text) is None:
        raise GoJSONError("illegal base64 data")
    return binascii.a2b_base64(text)


class _Object(list):  # type: ignore[type-arg]
    """The (name, value) pairs of a JSON object, in document order."""


class _EscapedString(str):
    """A JSON string whose source text contained an escape sequence."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"{name} is not JSON")


def _parse_number(text: str) -> float:
    # The values are never used; float() avoids the int digit limit Go does not have.
    return float(text)


def parse(data: bytes) -> Any:
    """Parse a JSON document; ``GoJSONError`` if Go's ``json.Valid`` would reject it."""
    text = data.decode("utf-8", "surrogateescape")  # invalid bytes stay visible, one each
    decoder = json.JSONDecoder(
        object_pairs_hook=_Object,
        parse_constant=_reject_constant,
        parse_int=_parse_number,
        parse_float=_parse_number,
    )
    try:
        if "\\" in text:  # rare: remember which strings were escaped (time.Time cares)
            _mark_escaped_strings(decoder)
        return decoder.decode(text)
    except (ValueError, RecursionError) as err:
        raise GoJSONError("invalid JSON") from err


def _mark_escaped_strings(decoder: json.JSONDecoder) -> None:
    """Switch ``decoder`` to the pure-Python scanner with a string parser that tags escapes."""
    plain: Callable[..., tuple[str, int]] = decoder.parse_string

    def parse_string(text: str, end: int, strict: bool = True) -> tuple[str, int]:
        value, new_end = plain(text, end, strict)
        if "\\" in text[end:new_end]:
            value = _EscapedString(value)
        return value, new_end

    decoder.parse_string = parse_string  # type: ignore[method-assign]
    decoder.scan_once = json_scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]


def decode_struct(document: Any, fields: Mapping[str, FieldKind]) -> dict[str, Any]:
    """Fill the lower-case ``fields`` from a parsed document like ``json.Unmarshal`` would.

    Returns only the fields present and not ``null`` (a ``null`` ``[]byte`` reads as ``b""``).
    """
    if document is None:
        return {}
    if not isinstance(document, _Object):
        raise GoJSONError("JSON value is not an object")
    values: dict[str, Any] = {}
    for name, value in document:
        field = _fold(name)
        kind = fields.get(field)
        if kind is None:
            continue
        if value is None:
            if kind is FieldKind.BYTES:
                values[field] = b""
            continue
        if not isinstance(value, str):
            raise GoJSONError(f"field {field!r} is not a JSON string")
        values[field] = _convert(value, kind)
    return values


def _convert(value: str, kind: FieldKind) -> Any:
    if kind is FieldKind.BYTES:
        return base64_decode(value)
    if kind is FieldKind.TIME:
        if isinstance(value, _EscapedString):
            raise GoJSONError("escaped time string")
        try:
            return Timestamp.parse_rfc3339(value)
        except ValueError as err:
            raise GoJSONError(str(err)) from err
    return _SURROGATE.sub("\ufffd", str(value))


def _fold(name: str) -> str:
    """Go's simple case folding for matching names (one character never becomes two)."""
    if name.isascii():
        return name.lower()
    return "".join(f if len(f := c.casefold()) == 1 else c for c in name)
