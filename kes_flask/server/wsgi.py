"""Running the WSGI app for one parsed request and turning its answer into HTTP/1.1 bytes.

Used by the event-loop worker (``worker.py``) on its handler threads. Responses carry no
``Server`` header (Go KES sends none), a ``Date`` header like Go's, ``Connection: close`` when the
connection ends after them, and are chunked when the app gives no ``Content-Length`` (the
``/v1/log/*`` streams).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from kes_flask.server.http11 import ProtocolError, Request
from kes_flask.telemetry.requests import REQUEST_ID_HEADER, request_id

if TYPE_CHECKING:
    from kes_flask.api.fast import FastPath
    from kes_flask.server.connection import Conn

log = logging.getLogger("kes_flask.server")

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "server", "date"}


class _Clock:
    """The HTTP ``Date`` value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def date(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True)
        return self._value


clock = _Clock()


def build_environ(
    request: Request,
    body: bytes,
    sock: Any,
    client: tuple[str, int],
    server: tuple[str, int],
) -> dict[str, Any]:
    """The WSGI environ gunicorn would build for ``request`` (same path decoding)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(request.path).decode("latin-1"),
        "QUERY_STRING": request.query,
        "RAW_URI": request.target,
        "SERVER_PROTOCOL": request.version,
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,  # chunked bodies are de-chunked and complete
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "gunicorn.socket": sock,
    }
    if request.content_length is not None:
        environ["CONTENT_LENGTH"] = str(request.content_length)
    for name, value in request.headers:
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "content-length":
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            environ[key] += "," + value
        else:
            environ[key] = value
    return environ


class Answer:
    """What the app answered: status line, headers and the body iterable."""

    __slots__ = ("body", "headers", "length", "status")

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.body: Iterable[bytes] = ()
        self.length: int | None = None


def call_app(app: Callable, environ: dict[str, Any]) -> Answer:
    answer = Answer()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        if exc_info and answer.status:
            raise exc_info[1].with_traceback(exc_info[2])
        answer.status = status
        answer.headers = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        for key, value in answer.headers:
            if key.lower() == "content-length":
                answer.length = int(value)
        return lambda _data: None  # the legacy write() callable: unused by Flask

    answer.body = app(environ, start_response)
    return answer


def head_bytes(
    status: str, headers: Iterable[tuple[str, str]], close: bool, chunked: bool = False
) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Date: {clock.date()}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok_json_head(length: int, keep: bool, request_id: str) -> bytes:
    """The head of a 200 JSON answer, as Flask's response plus the server's headers."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"X-Request-Id: %s\r\n%s%s\r\n"
        % (
            length,
            request_id.encode(),
            b"Date: %s\r\n" % clock.date().encode(),
            b"" if keep else b"Connection: close\r\n",
        )
    )


def error_bytes(error: ProtocolError) -> bytes:
    body = ('{"message":' + json.dumps(error.message) + "\n}").encode()
    head = head_bytes(
        f"{error.status} {error.reason}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            (REQUEST_ID_HEADER, request_id(None)),  # the request could not be read: a new id
        ],
        close=True,
    )
    return head + body


INTERNAL_ERROR = error_bytes(ProtocolError(500, "Internal Server Error", "internal server error"))

# Go's net/http answer to plain HTTP on a TLS port, byte for byte.
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)


def write_answer(
    answer: Answer,
    send: Callable[[bytes], None],
    close: bool,
    head_only: bool,
) -> bool:
    """Send the app's answer with ``send`` (blocking); returns whether the framing stayed intact.

    A body without ``Content-Length`` is sent chunked, each non-empty piece as soon as the app
    yields it (the first, possibly empty, piece sends the head: log streams start at once).
    """
    chunked = answer.length is None and not head_only
    head = head_bytes(answer.status, answer.headers, close, chunked)
    sent_head = False
    written = 0
    try:
        for piece in answer.body:
            if head_only:
                continue
            if chunked:
                data = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if piece else b""
            else:
                data = piece
                written += len(piece)
            if not sent_head:
                data, sent_head = head + data, True
            if data:
                send(data)
        tail = b"0\r\n\r\n" if chunked else b""
        if not sent_head:
            tail = head + tail
        if tail:
            send(tail)
    finally:
        close_body = getattr(answer.body, "close", None)
        if close_body is not None:
            close_body()
    return answer.length is None or head_only or written == answer.length


def fast_answer(
    fast: FastPath, conn: Conn, body: bytes, prefix: str, may_block: bool
) -> bytes | None:
    """The whole HTTP answer the fast path gives ``conn``'s request, or None (it cannot: the
    request goes to a handler thread, or through Flask). ``conn.keep`` must be final."""
    request = conn.request
    length = request.content_length
    declared_empty = length == 0 if length is not None else not request.chunked
    result = fast.answer(
        prefix, request.method, request.path, body, declared_empty,
        conn.peer, conn.authz, may_block,
    )  # fmt: skip
    if type(result) is not bytes:
        return None
    rid = request_id(request.header("x-request-id"))
    return ok_json_head(len(result), conn.keep, rid) + result
