"""JSON bodies: requests decoded the way Go's encoding/json reads them into KES request
structs, answers encoded the way Go's ``json.Encoder`` writes them (api.md §1.8).

No Flask here: the worker's fast path (``api/fast.py``) decodes and encodes with these before
the Flask app exists; reading a body from the WSGI stream is ``api/request_body.py``.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from typing import Any

# Limits applied while decoding, before a value can cost CPU or memory. KES request fields are
# base64 strings; a number is never valid in one, so a long number is refused at once rather than
# converted (Python refuses ints over 4 300 digits with a ValueError; a float is parsed in full).
# Nesting is bounded by the C decoder's recursion check (about 1 000 levels), which fails in
# microseconds; a Python-level pre-scan of a 1 MB body would cost more than it saves.
MAX_NUMBER_LENGTH = 64


class BodyError(ValueError):
    pass


class LimitError(BodyError):
    """A decoding limit was hit: the client gets the route's message plus this reason."""


def _number(text: str) -> float | int:
    if len(text) > MAX_NUMBER_LENGTH:
        raise LimitError(f"a number is longer than {MAX_NUMBER_LENGTH} characters")
    return float(text) if any(c in text for c in ".eE") else int(text)


def _constant(name: str) -> None:
    raise BodyError(f"{name} is not JSON")  # Python accepts NaN/Infinity, JSON and Go do not


_decoder = json.JSONDecoder(
    object_pairs_hook=lambda pairs: {k.lower(): v for k, v in pairs},
    parse_int=_number,
    parse_float=_number,
    parse_constant=_constant,
)


def decode_object(data: bytes) -> dict[str, Any]:
    """One JSON object (keys lower-cased, last duplicate wins); ``null`` is an empty object.

    Like Go, trailing bytes after the first value are ignored and an empty body is an error.
    """
    text = data.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise BodyError("empty body")
    try:
        value, _ = _decoder.raw_decode(text)
    except json.JSONDecodeError as err:
        raise BodyError(str(err)) from None
    except RecursionError:
        raise LimitError("JSON is nested too deeply") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BodyError("body is not a JSON object")
    return value


def bytes_field(obj: dict[str, Any], name: str) -> bytes:
    """A Go ``[]byte`` field: standard padded base64, ``\\r``/``\\n`` ignored, null = empty."""
    value = obj.get(name)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise BodyError(f"{name} is not a string")
    try:
        return b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise BodyError(f"{name} is not valid base64") from None


def string_field(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BodyError(f"{name} is not a string")
    return value


def json_body(value: Any) -> str:
    """Compact JSON plus the newline Go's encoder appends."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"
