"""The worker's event loop: every connection's state machine, on one thread.

Non-blocking TLS handshakes, a strict bounded HTTP/1.1 parser (``http11.py``), handshake,
header, body, idle and write deadlines, and a cap on connections (beyond it the loop stops
accepting; the kernel queues the rest for whichever worker has room). A stalled client costs a
socket and a buffer, never a thread.

Requests the fast path (``api/fast.py``) can answer without waiting are answered here, inline;
every other request is handed to the worker (``hand_off``), whose threads give the connection
back with ``give_back`` when they have answered.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kes_flask.api.fast import FastPath
from kes_flask.server.connection import (
    BODY,
    BUSY,
    HANDSHAKE,
    HEAD,
    IDLE,
    LINGER,
    PEEK,
    SNIFF_GONE,
    SNIFF_HTTP,
    SNIFF_WAIT,
    WRITE,
    Conn,
    ServingOptions,
)
from kes_flask.server.http11 import BodyReader, ProtocolError, head_end, parse_head
from kes_flask.server.tls import log_handshake_error
from kes_flask.server.wsgi import PLAIN_HTTP_ANSWER, error_bytes, fast_answer

BODY_KEEP = 1_000_001  # the largest route body (1 MB) plus one byte to recognise oversize
BODY_DISCARD = 4 << 20  # read and dropped beyond that so the connection stays usable
LINGER_SECONDS = 2.0  # after a closing answer, read what the client still sends, then close
STOP_LINGER_SECONDS = 2.0  # on shutdown, how long an idle kept-alive connection may still ask
DRAIN_MARGIN_SECONDS = 1.0  # a drain ends this long before the master's SIGKILL: exit on our own
SWEEP_SECONDS = 0.1
RECV_SIZE = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ConnectionLoop:
    """Owns the selector, every connection and the hand-off to and from handler threads."""

    def __init__(
        self,
        options: ServingOptions,
        tls_context: Callable[[], Any],
        fast: FastPath,
        hand_off: Callable[[Conn, bytes, str | None], None],
        log: Any,
    ) -> None:
        self.options = options
        self.tls_context = tls_context  # the server's current context (it follows reloads)
        self.fast = fast
        self.hand_off = hand_off  # (connection, body, fast-path prefix) to a thread that may wait
        self.log = log  # gunicorn's error logger: warnings about clients
        self.alive = True  # False once the worker stops: answers then close their connection
        self.conns: dict[int, Conn] = {}
        self.returned: deque[tuple[Conn, bool]] = deque()
        self.listeners: list[socket.socket] = []
        self.accepting = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)

    def listen(self, listeners: list[socket.socket]) -> None:
        for listener in listeners:
            listener.setblocking(False)
        self.listeners = list(listeners)

    def watch_pipe(self, fd: int) -> None:
        """Wake up (and drain) when ``fd`` becomes readable: gunicorn's signal pipe."""
        self.sel.register(fd, selectors.EVENT_READ, None)

    def give_back(self, conn: Conn, keep: bool) -> None:
        """From a handler thread: the request on ``conn`` is answered; the loop takes it back."""
        self.returned.append((conn, keep))
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass  # the loop is already awake

    def poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            data = key.data
            if type(data) is Conn:
                self._on_event(data, mask)
            elif data is None:
                try:
                    while os.read(key.fd, 4096):
                        pass
                except OSError:
                    pass
            else:
                self._accept(data)
        while self.returned:
            self._take_back(*self.returned.popleft())

    def drain(self, graceful_timeout: float, notify: Callable[[], None]) -> None:
        """SIGTERM (also the old workers of a SIGHUP reload): stop accepting, then finish.

        Connections already accepted are served — a handshake in progress completes, a request
        that arrives is answered with ``Connection: close`` — and kept-alive ones (idle, or
        answered with keep-alive since) get ``STOP_LINGER_SECONDS`` for a last request, all
        within gunicorn's graceful timeout. The listen queue is left to the other workers.
        """
        self.alive = False
        self.set_accepting(False)
        now = time.monotonic()
        deadline = now + max(graceful_timeout - DRAIN_MARGIN_SECONDS, graceful_timeout / 2)
        for conn in self.conns.values():
            if conn.state == IDLE:
                conn.deadline = min(conn.deadline, now + STOP_LINGER_SECONDS)
        last_notify = 0.0
        while self.conns and time.monotonic() < deadline:
            if time.monotonic() - last_notify >= 1.0:
                notify()
                last_notify = time.monotonic()
            self.poll(SWEEP_SECONDS)
            self.sweep(time.monotonic())
        busy = sum(conn.state not in (IDLE, LINGER) for conn in self.conns.values())
        if busy:
            self.log.warning("graceful timeout: closing %d connection(s) in progress", busy)
        for conn in list(self.conns.values()):
            self.close(conn)
        for listener in self.listeners:
            listener.close()

    def set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.listeners:
            if enabled:
                self.sel.register(listener, selectors.EVENT_READ, listener)
            else:
                self.sel.unregister(listener)
        self.accepting = enabled

    def sweep(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.state != BUSY and now >= conn.deadline:
                if conn.state in (PEEK, HANDSHAKE):
                    log_handshake_error(conn.name(), TimeoutError())
                self.close(conn)

    def _watch(self, conn: Conn, events: int) -> None:
        if events == conn.events:
            return
        if not conn.events:
            self.sel.register(conn.fd, events, conn)
        elif not events:
            self.sel.unregister(conn.fd)
        else:
            self.sel.modify(conn.fd, events, conn)
        conn.events = events

    def close(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        self._watch(conn, 0)
        try:
            conn.sock.close()
        except OSError:
            pass

    # --- connection states ------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        try:
            raw, client = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.log.warning("cannot accept a connection: %s", err)
                return
            raise
        raw.setblocking(False)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = Conn(raw, client, listener.getsockname())
        context = self.tls_context()
        conn.deadline = time.monotonic() + getattr(context, "handshake_timeout", 10.0)
        self.conns[conn.fd] = conn
        self._watch(conn, selectors.EVENT_READ)

    def _on_event(self, conn: Conn, mask: int) -> None:
        state = conn.state
        if state == HEAD or state == IDLE or state == BODY:
            self._read(conn)
        elif state == WRITE:
            self._write(conn)
        elif state == PEEK:
            self._peek(conn)
        elif state == HANDSHAKE:
            self._handshake(conn)
        elif state == LINGER:
            self._linger(conn)

    def _peek(self, conn: Conn) -> None:
        kind = conn.sniff()
        if kind == SNIFF_WAIT:
            return
        if kind == SNIFF_GONE:
            self.close(conn)
            return
        if kind == SNIFF_HTTP:
            self._answer_plain_http(conn)
            return
        context = self.tls_context()
        conn.sock = context.wrap_nonblocking(conn.raw)
        conn.state = HANDSHAKE
        self._handshake(conn)

    def _answer_plain_http(self, conn: Conn) -> None:
        reason = ValueError("client sent an HTTP request to an HTTPS server")
        log_handshake_error(conn.name(), reason)
        try:
            conn.raw.recv(RECV_SIZE)
            conn.raw.send(PLAIN_HTTP_ANSWER)
        except OSError:
            self.close(conn)
            return
        self._start_linger(conn)

    def _handshake(self, conn: Conn) -> None:
        try:
            conn.sock.do_handshake()  # type: ignore[union-attr]
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError) as err:
            log_handshake_error(conn.name(), err)
            self.close(conn)
            return
        self._await_request(conn, first=True)
        self._read(conn)

    def _await_request(self, conn: Conn, first: bool = False) -> None:
        conn.request = conn.reader = None
        conn.out = b""
        if conn.buffer or first:
            conn.state = HEAD
            conn.deadline = time.monotonic() + self.options.header_timeout
        else:
            conn.state = IDLE  # when draining, kept alive only for a request already on its way
            idle = self.options.idle_timeout if self.alive else STOP_LINGER_SECONDS
            conn.deadline = time.monotonic() + idle
        self._watch(conn, selectors.EVENT_READ)

    def _read(self, conn: Conn) -> None:
        sock = conn.sock
        try:
            data = sock.recv(RECV_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (OSError, ValueError):
            self.close(conn)
            return
        try:
            while data and sock.pending():  # type: ignore[union-attr]
                data += sock.recv(RECV_SIZE)  # decrypted bytes already buffered by OpenSSL
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except (OSError, ValueError):
            self.close(conn)
            return
        if not data:
            self.close(conn)
            return
        if conn.state == IDLE:
            conn.state = HEAD
            conn.deadline = time.monotonic() + self.options.header_timeout
        conn.buffer += data
        self._advance(conn)

    def _advance(self, conn: Conn) -> None:
        """Parse and serve what is buffered; requests pipelined behind each other in turn."""
        while True:
            try:
                if conn.state == HEAD:
                    end = head_end(conn.buffer)
                    if end < 0:
                        return
                    request = parse_head(bytes(conn.buffer[: end - 4]))
                    del conn.buffer[:end]
                    conn.request = request
                    conn.keep = request.keep_alive
                    length = request.content_length
                    if length is not None and length > BODY_KEEP + BODY_DISCARD:
                        conn.keep = False  # the app answers from the header alone; then close
                        self._dispatch(conn, b"")
                    elif request.chunked or length:
                        conn.reader = BodyReader(request, BODY_KEEP, BODY_DISCARD)
                        conn.state = BODY
                        conn.deadline = time.monotonic() + self.options.body_timeout
                        if request.expect_continue:
                            self._send_quietly(conn, _CONTINUE)
                    else:
                        self._dispatch(conn, b"")
                if conn.state == BODY:
                    reader = conn.reader
                    if not reader.feed(conn.buffer):  # type: ignore[union-attr]
                        return
                    if reader.overflow:  # type: ignore[union-attr]
                        conn.keep = False
                    self._dispatch(conn, reader.body())  # type: ignore[union-attr]
            except ProtocolError as err:
                self._reject(conn, err)
                return
            if conn.state != HEAD or not conn.buffer:
                return

    def _reject(self, conn: Conn, err: ProtocolError) -> None:
        self.log.warning("Invalid request from ip=%s: %s", conn.client[0], err.message)
        conn.buffer.clear()
        conn.keep = False
        self._respond(conn, error_bytes(err))

    def _send_quietly(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.send(data)
        except (OSError, ValueError):
            pass

    # --- answering ----------------------------------------------------------------------

    def _dispatch(self, conn: Conn, body: bytes) -> None:
        request = conn.request
        keep = conn.keep and self.alive
        conn.keep = keep
        fast = self.fast
        prefix = fast.prefix_of(request.path)
        if prefix is not None:
            answer = fast_answer(fast, conn, body, prefix, may_block=False)
            if answer is not None:
                self._respond(conn, answer)
                return
        conn.state = BUSY
        self._watch(conn, 0)
        self.hand_off(conn, body, prefix)

    def _respond(self, conn: Conn, data: bytes) -> None:
        conn.out = data
        conn.state = WRITE
        conn.deadline = time.monotonic() + self.options.write_timeout
        self._write(conn)

    def _write(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            sent = 0
        except (OSError, ValueError):
            self.close(conn)
            return
        if sent < len(conn.out):
            conn.out = conn.out[sent:]
            self._watch(conn, selectors.EVENT_WRITE)
            return
        conn.out = b""
        if conn.keep:
            self._await_request(conn)
        else:
            self._start_linger(conn)

    def _start_linger(self, conn: Conn) -> None:
        """Half-close, then drop what the client still sends so it sees the answer, not a reset."""
        conn.state = LINGER
        conn.deadline = time.monotonic() + LINGER_SECONDS
        try:
            conn.shutdown_write()
        except OSError:
            self.close(conn)
            return
        self._watch(conn, selectors.EVENT_READ)

    def _linger(self, conn: Conn) -> None:
        try:
            if conn.discard_input(RECV_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close(conn)

    def _take_back(self, conn: Conn, keep: bool) -> None:
        if conn.fd not in self.conns:
            return
        try:
            conn.sock.setblocking(False)
        except OSError:
            self.close(conn)
            return
        if keep:  # the answer promised keep-alive: while draining, one more request is answered
            self._await_request(conn)
            if conn.buffer:
                self._advance(conn)
        else:
            self._start_linger(conn)
