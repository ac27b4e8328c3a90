"""Request bodies, decoded the way Go's encoding/json reads them into KES request structs.

Clients send JSON with or without ``Content-Type`` and usually chunked (api.md §1.7,
minio.md §2.2), so the body is read from the WSGI stream with a hard cap — never with
``get_data()``, which would buffer an unbounded chunked body.
"""

from __future__ import annotations

import binascii
import json
import time
from base64 import b64decode
from typing import Any

from flask import request

from kes_flask.api.errors import KesError

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


# An oversized body is read and discarded up to this much, so the connection stays usable for
# the next request (gunicorn itself drains only 64 KiB and then closes the connection).
DISCARD_LIMIT = 4 << 20
DISCARD_SECONDS = 5.0


def read_body(max_body: int) -> bytes:
    """Read at most ``max_body`` bytes; a larger body is an error (there is no 413 in KES)."""
    length = request.content_length
    if length is not None and length > max_body:
        if length - max_body <= DISCARD_LIMIT:
            _discard_rest()
        raise BodyError("body too large")
    try:
        data = request.stream.read(max_body + 1)
    except Exception as err:  # noqa: BLE001 - broken chunking, resets: the client's fault
        raise BodyError(f"cannot read body: {err}") from None
    if len(data) > max_body:
        _discard_rest()
        raise BodyError("body too large")
    return data


def _discard_rest() -> None:
    """Drain what is left of the body, bounded in bytes and time; past that the server closes."""
    sock = request.environ.get("gunicorn.socket")
    previous = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + DISCARD_SECONDS
    discarded = 0
    try:
        while discarded < DISCARD_LIMIT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if sock is not None:
                sock.settimeout(remaining)
            chunk = request.stream.read(64 * 1024)
            if not chunk:
                return
            discarded += len(chunk)
    except Exception:  # noqa: BLE001 - timeouts, framing errors: the connection closes after this
        return
    finally:
        if sock is not None:
            try:
                sock.settimeout(previous)
            except OSError:
                pass


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


def read_object(max_body: int, message: str, *, optional: bool = False) -> dict[str, Any]:
    """Read and decode the body, answering any problem with 400 ``message``."""
    if optional and _declared_empty():
        return {}  # like Go: the body is decoded only if its length is > 0 or unknown
    try:
        return decode_object(read_body(max_body))
    except LimitError as err:
        raise KesError(400, f"{message}: {err}") from None
    except BodyError:
        raise KesError(400, message) from None


def _declared_empty() -> bool:
    if request.content_length is not None:
        return request.content_length == 0
    return "chunked" not in request.headers.get("Transfer-Encoding", "").lower()


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
