"""A small HTTP/1.1 client over raw TLS sockets for fault injection: it sends exactly the bytes it
is given (broken framing, pipelined requests) and reads answers without trusting the server."""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field


class Hang(Exception):
    """No (complete) answer within the timeout."""


class Closed(Exception):
    """The server closed the connection before the answer began."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float = 0.0
    raw_head: bytes = field(default=b"", repr=False)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"

    @property
    def status_code(self) -> int:
        return self.status

    def json(self) -> object:
        return json.loads(self.body)

    def json_error(self) -> str | None:
        """The KES error message, or None if the body is not ``{"message": str}`` JSON."""
        if not self.headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("message"), str):
            return None
        return value["message"]


class Connection:
    """One TLS connection; ``request`` sends bytes, ``answer`` reads the next response."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float) -> None:
        self.timeout = timeout
        plain = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(plain, server_hostname="localhost")
        except BaseException:
            plain.close()
            raise
        self.buffer = b""
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def finish_sending(self) -> None:
        """Tell the server no more bytes come (TLS close_notify is not a half-close, so shut
        the TCP write side down instead); the server sees EOF wherever it is reading."""
        try:  # SSLSocket.shutdown would drop the TLS layer for reading too: bypass it
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self, deadline: float) -> bool:
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Hang(f"no complete answer within {self.timeout}s")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            raise Hang(f"no complete answer within {self.timeout}s") from None
        except (ssl.SSLError, ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def answer(self, head_request: bool = False) -> Answer:
        while True:  # interim answers (100 Continue) precede the real one
            answer = self._answer(head_request)
            if not 100 <= answer.status < 200:
                return answer

    def _answer(self, head_request: bool) -> Answer:
        started = time.monotonic()
        deadline = started + self.timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                if self.buffer:
                    raise Hang(f"connection closed inside a response head: {self.buffer[:200]!r}")
                raise Closed()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        if head_request or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked(deadline)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buffer) < length:
                if not self._fill(deadline):
                    raise Hang("connection closed inside a response body")
            body, self.buffer = self.buffer[:length], self.buffer[length:]
        else:
            while self._fill(deadline):
                pass
            body, self.buffer = self.buffer, b""
        return Answer(status, headers, body, time.monotonic() - started, head)

    def _chunked(self, deadline: float) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                if not self._fill(deadline):
                    raise Hang("connection closed inside a chunked body")
            size_line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buffer) < size + 2:
                if not self._fill(deadline):
                    raise Hang("connection closed inside a chunk")
            body += self.buffer[:size]
            self.buffer = self.buffer[size + 2 :]
            if size == 0:
                return body

    def rest(self, timeout: float) -> list[Answer]:
        """Every further answer until the server closes (for requests with broken framing)."""
        answers = []
        self.timeout = timeout
        while True:
            try:
                answers.append(self.answer())
            except Closed:
                return answers


def client_context(server_cert: str, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server_cert)
    context.set_alpn_protocols(["http/1.1"])
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
