"""Reading a request body from the WSGI stream, with a hard cap.

Clients send JSON with or without ``Content-Type`` and usually chunked (api.md §1.7,
minio.md §2.2), so the body is read with a cap — never with ``get_data()``, which would buffer
an unbounded chunked body. Decoding is ``api/body.py``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import request

from kes_flask.api.body import BodyError, LimitError, decode_object
from kes_flask.api.errors import KesError

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
