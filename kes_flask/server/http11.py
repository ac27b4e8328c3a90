"""A strict, small HTTP/1.1 request parser for the event-loop worker.

Only what KES clients send is accepted: ``METHOD SP target SP HTTP/1.x`` with CRLF line endings,
token header names, no obsolete line folding, ``Content-Length`` *or* ``Transfer-Encoding:
chunked``. Anything else is a ``ProtocolError`` carrying the 4xx to answer before the connection is
closed. Parsing is incremental and bounded: the caller feeds what it has received, the parser
never holds more than the configured limits, and bare CR or LF is refused as soon as it is seen
instead of waiting for a terminator that will never come.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REQUEST_LINE = 8190
MAX_HEADER_LINE = 8190
MAX_HEADERS = 100
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 1024
MAX_TRAILER = 8 * 1024

_TCHARS = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
_VALUE = "[^\\x00-\\x08\\x0a-\\x1f\\x7f]*"  # no control characters but HTAB: no bare CR or LF
_REQUEST_LINE = re.compile(f"({_TCHARS}) ([^\\x00-\\x20\\x7f]+) (HTTP/[0-9.]+)")
_HEADER_BLOCK = re.compile(f"(?:{_TCHARS}:{_VALUE}\\r\\n)*")  # linear: no ambiguity to backtrack
_HEADER_PAIRS = re.compile(f"({_TCHARS}):({_VALUE})\\r\\n")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_BARE_CR_OR_LF_TEXT = re.compile(r"\r(?!\n)|(?<!\r)\n")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_BAD_EXTENSION = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_ONE_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,7})\r\n")
_LAST_CHUNK = b"\r\n0\r\n\r\n"
_SPECIAL = frozenset(("content-length", "transfer-encoding", "connection", "expect"))


class ProtocolError(Exception):
    """A request that cannot be served: answered with ``status`` and closed."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(400, "Bad Request", message)


HEADERS_TOO_LARGE = ProtocolError(
    431, "Request Header Fields Too Large", "request headers too large"
)
URI_TOO_LONG = ProtocolError(414, "URI Too Long", "request line too long")


@dataclass(slots=True)
class Request:
    method: str
    target: str  # as sent, latin-1
    path: str  # target without query or fragment, still percent-encoded
    query: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: list[tuple[str, str]]  # (lower-case name, value), in order
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expect_continue: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def head_end(buffer: bytearray | bytes) -> int:
    """Index just past the head's blank line, or -1; raises on bare CR/LF or an oversized head."""
    end = buffer.find(b"\r\n\r\n")
    if end >= 0:
        if end + 4 > MAX_HEAD:
            raise HEADERS_TOO_LARGE
        return end + 4
    # Incomplete: refuse now what can never become a valid head (a trailing CR may still
    # be followed by its LF).
    probe = buffer[:-1] if buffer.endswith(b"\r") else buffer
    if _BARE_CR_OR_LF.search(probe):
        raise bad_request("malformed HTTP request: line endings must be CRLF")
    if len(buffer) > MAX_HEAD:
        raise HEADERS_TOO_LARGE
    if buffer.find(b"\r\n") < 0 and len(buffer) > MAX_REQUEST_LINE:
        raise URI_TOO_LONG
    return -1


def parse_head(head: bytes) -> Request:
    """Parse a complete head (request line and headers, the blank line excluded).

    Two C-level regular expressions validate the whole head (token names, values without
    control characters, CRLF only); Python then touches each header once.
    """
    text = head.decode("latin-1")
    cut = text.find("\r\n")
    line = text if cut < 0 else text[:cut]
    if len(line) > MAX_REQUEST_LINE:
        raise URI_TOO_LONG
    matched = _REQUEST_LINE.fullmatch(line)
    if matched is None:
        raise _request_line_error(line)
    method, target, version = matched.groups()
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise bad_request("malformed HTTP request: unsupported HTTP version")
    path = _origin_path(target)
    path, _, query = path.partition("?")
    path = path.partition("#")[0]
    query = query.partition("#")[0]

    block = "" if cut < 0 else text[cut + 2 :] + "\r\n"
    if _HEADER_BLOCK.fullmatch(block) is None:
        if _BARE_CR_OR_LF_TEXT.search(block[:-2]):
            raise bad_request("malformed HTTP request: line endings must be CRLF")
        raise bad_request("malformed HTTP request: invalid header line")
    pairs = _HEADER_PAIRS.findall(block)
    if len(pairs) > MAX_HEADERS:
        raise HEADERS_TOO_LARGE
    headers: list[tuple[str, str]] = []
    content_length: int | None = None
    transfer_encoding: str | None = None
    connection = ""
    expect = ""
    for name, value in pairs:
        if len(value) > MAX_HEADER_LINE:
            raise HEADERS_TOO_LARGE
        name = name.lower()
        value = value.strip(" \t")
        headers.append((name, value))
        if name not in _SPECIAL:
            continue
        if name == "content-length":
            if not value.isdigit() or not value.isascii() or len(value) > 18:
                raise bad_request("malformed HTTP request: invalid Content-Length")
            if content_length is not None and content_length != int(value):
                raise bad_request("malformed HTTP request: conflicting Content-Length")
            content_length = int(value)
        elif name == "transfer-encoding":
            if transfer_encoding is not None:
                raise bad_request("malformed HTTP request: repeated Transfer-Encoding")
            transfer_encoding = value.lower()
        elif name == "connection":
            connection += "," + value.lower()
        else:
            expect = value.lower()

    chunked = False
    if transfer_encoding is not None:
        if transfer_encoding != "chunked":
            raise bad_request("malformed HTTP request: unsupported Transfer-Encoding")
        if content_length is not None:
            raise bad_request("malformed HTTP request: both Content-Length and Transfer-Encoding")
        chunked = True
    if version == "HTTP/1.1":
        keep_alive = not connection or "close" not in {t.strip() for t in connection.split(",")}
    else:
        keep_alive = False
    if expect and expect != "100-continue":
        raise ProtocolError(417, "Expectation Failed", f"unsupported expectation '{expect}'")
    return Request(
        method=method,
        target=target,
        path=path,
        query=query,
        version=version,
        headers=headers,
        content_length=content_length,
        chunked=chunked,
        keep_alive=keep_alive,
        expect_continue=bool(expect) and version == "HTTP/1.1",
    )


def _request_line_error(line: str) -> ProtocolError:
    if "\r" in line or "\n" in line:
        return bad_request("malformed HTTP request: line endings must be CRLF")
    parts = line.split(" ")
    if len(parts) != 3:
        return bad_request("malformed HTTP request: invalid request line")
    if re.fullmatch(_TCHARS, parts[0]) is None:
        return bad_request("malformed HTTP request: invalid method")
    return bad_request("malformed HTTP request: invalid request target")


def _origin_path(target: str) -> str:
    if target.startswith("/"):
        return target
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):  # absolute-form: route by its path
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    raise bad_request("malformed HTTP request: invalid request target")


class BodyReader:
    """Collects a request body from received bytes: Content-Length or chunked, bounded.

    Keeps at most ``keep`` bytes (what the largest route may read, plus one so an oversized
    body is still recognised as such) and discards the rest up to ``discard`` more; past that
    ``overflow`` is set and the connection must close after the response.
    """

    __slots__ = ("_left", "_state", "chunked", "keep", "kept", "length", "limit", "parts", "seen")

    def __init__(self, request: Request, keep: int, discard: int) -> None:
        self.keep = keep
        self.limit = keep + discard
        self.length = request.content_length
        self.chunked = request.chunked
        self.parts: list[bytes] = []
        self.kept = 0
        self.seen = 0
        self._state = "size" if self.chunked else "data"
        self._left = 0 if self.chunked else (self.length or 0)

    @property
    def overflow(self) -> bool:
        return self.seen > self.limit

    def body(self) -> bytes:
        return b"".join(self.parts)

    def _take(self, data: bytes) -> None:
        self.seen += len(data)
        room = self.keep - self.kept
        if room > 0:
            piece = data[:room]
            self.parts.append(piece)
            self.kept += len(piece)

    def feed(self, buffer: bytearray) -> bool:
        """Consume body bytes from ``buffer``; True when the body is complete (or overflowed)."""
        if not self.chunked:
            n = min(self._left, len(buffer))
            if n:
                self._take(bytes(buffer[:n]))
                del buffer[:n]
                self._left -= n
            return self._left == 0 or self.overflow
        if self._state == "size" and not self.parts:
            # The usual case: the whole body in one chunk, all of it received.
            match = _ONE_CHUNK.match(buffer)
            if match is not None:
                start = match.end()
                end = start + int(match[1], 16)
                if end <= self.keep and buffer[end : end + 7] == _LAST_CHUNK:
                    self._take(bytes(buffer[start:end]))
                    del buffer[: end + 7]
                    return True
        while True:
            if self.overflow:
                return True
            if self._state == "data":
                n = min(self._left, len(buffer))
                if n:
                    self._take(bytes(buffer[:n]))
                    del buffer[:n]
                    self._left -= n
                if self._left:
                    return False
                self._state = "crlf"
            elif self._state == "crlf":
                if len(buffer) < 2:
                    if buffer[:1] not in (b"", b"\r"):
                        raise bad_request("malformed chunked body: missing CRLF after chunk")
                    return False
                if buffer[:2] != b"\r\n":
                    raise bad_request("malformed chunked body: missing CRLF after chunk")
                del buffer[:2]
                self._state = "size"
            elif self._state == "size":
                line = self._line(buffer, MAX_CHUNK_LINE)
                if line is None:
                    return False
                size, _, extension = line.partition(b";")
                size = size.rstrip(b" \t")
                if not _HEX.fullmatch(size) or _BAD_EXTENSION.search(extension):
                    raise bad_request("malformed chunked body: invalid chunk size")
                self._left = int(size, 16)
                self._state = "data" if self._left else "trailer"
            else:  # trailer: header lines until the blank line, all ignored
                line = self._line(buffer, MAX_TRAILER)
                if line is None:
                    return False
                if not line:
                    return True
                self.seen += len(line) + 2
                if self.seen > self.limit:
                    raise bad_request("malformed chunked body: trailer too large")

    @staticmethod
    def _line(buffer: bytearray, limit: int) -> bytes | None:
        end = buffer.find(b"\r\n")
        if end < 0:
            if b"\n" in buffer or b"\r" in buffer[:-1]:
                raise bad_request("malformed chunked body: line endings must be CRLF")
            if len(buffer) > limit:
                raise bad_request("malformed chunked body: line too long")
            return None
        if end > limit:
            raise bad_request("malformed chunked body: line too long")
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        if b"\n" in line or b"\r" in line:
            raise bad_request("malformed chunked body: line endings must be CRLF")
        return line
