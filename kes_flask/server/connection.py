"""One client connection of the event-loop worker: its state, buffers and limits."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

# A connection's states, in the order a request passes through them: PEEK (is it TLS at all?),
# HANDSHAKE, IDLE (kept alive, no request yet), HEAD, BODY, BUSY (on a handler thread),
# WRITE (an answer is being sent), LINGER (half-closed after a closing answer).
PEEK, HANDSHAKE, IDLE, HEAD, BODY, BUSY, WRITE, LINGER = range(8)
# What a connection's first bytes say (``Conn.sniff``): wait for more, TLS, plain HTTP, gone.
SNIFF_WAIT, SNIFF_TLS, SNIFF_HTTP, SNIFF_GONE = range(4)
_GO_HTTP_PREFIXES = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


@dataclass(frozen=True)
class ServingOptions:
    """Per-connection limits (seconds); Go KES's values are the defaults."""

    header_timeout: float = 5.0  # from the first byte of a request to the end of its head
    body_timeout: float = 15.0  # reading the whole body (the routes' default timeout)
    idle_timeout: float = 90.0  # a kept-alive connection without a request
    write_timeout: float = 15.0  # writing one answer (or one piece of a log stream)
    max_connections: int = 1000  # per worker; beyond it the kernel queues new connections


class Conn:
    """What the loop knows about one connection; ``authz`` caches policy decisions by path."""

    __slots__ = (
        "authz",
        "buffer",
        "client",
        "deadline",
        "events",
        "fd",
        "keep",
        "out",
        "raw",
        "reader",
        "request",
        "server",
        "sock",
        "state",
    )

    def __init__(self, raw: socket.socket, client: tuple, server: tuple) -> None:
        self.raw = raw
        self.sock: ssl.SSLSocket | socket.socket = raw
        self.fd = raw.fileno()
        self.client = client
        self.server = server
        self.state = PEEK
        self.deadline = 0.0
        self.events = 0
        self.buffer = bytearray()
        self.request = None
        self.reader = None
        self.out = b""
        self.keep = True
        self.authz: dict[str, bool] = {}

    def sniff(self) -> int:
        """Whether the client speaks TLS; a plain HTTP request gets Go's plain-text answer."""
        try:
            first = self.raw.recv(5, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return SNIFF_WAIT
        except OSError:
            return SNIFF_GONE
        if not first:
            return SNIFF_GONE
        if first[0] != 0x16:  # not a TLS handshake record
            if len(first) < 5 and any(p.startswith(first) for p in _GO_HTTP_PREFIXES):
                return SNIFF_WAIT  # not enough bytes to tell
            if first in _GO_HTTP_PREFIXES:
                return SNIFF_HTTP
        return SNIFF_TLS

    # TCP-level calls, through ``socket.socket`` on ``sock``: the TLS wrap detached ``raw`` (its
    # calls then fail with EBADF), and lingering needs neither a TLS close_notify nor decryption.
    def shutdown_write(self) -> None:
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def discard_input(self, size: int) -> bool:
        """Read and drop what the client still sends; False at its EOF."""
        return bool(socket.socket.recv(self.sock, size))

    def peer(self):
        return self.sock.kes_peer()  # type: ignore[union-attr]

    def name(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
