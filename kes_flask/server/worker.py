"""The gunicorn worker: one selectors event loop per process for long-lived keep-alive mTLS.

Why not gthread: its executor hand-off and pipe wake-up per request, and its pure-Python parser,
cost more than the request itself, and a client that stops mid-handshake or mid-header holds one
of its few threads. Here the loop owns every connection: non-blocking TLS handshakes, a strict
bounded HTTP/1.1 parser (``http11.py``) with handshake, header, body and idle deadlines, and a
cap on connections per worker (beyond it the worker stops accepting; the kernel queues the rest
for whichever worker has room). A stalled client costs a socket and a buffer, never a thread.

Requests run where they cannot stall the loop: the hot routes (generate, encrypt, decrypt) with a
cached key are answered inline by ``api/fast.py``; everything else — a key that must be fetched
from a remote keystore, writes, the ``/v1/log/*`` streams, every error — runs the Flask app on a
small pool of handler threads (``--threads``) which then give the connection back to the loop.

gunicorn keeps the master, signals (SIGHUP reload, SIGTERM graceful drain), worker respawn and the
``notify()`` heartbeat.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass

from gunicorn.workers.base import Worker

from kes_flask.api.fast import FastPath
from kes_flask.runtime import EXTENSION
from kes_flask.server import hardening
from kes_flask.server.http11 import BodyReader, ProtocolError, head_end, parse_head
from kes_flask.server.tls import log_handshake_error
from kes_flask.server.wsgi import (
    INTERNAL_ERROR,
    PLAIN_HTTP_ANSWER,
    build_environ,
    call_app,
    error_bytes,
    ok_json_head,
    write_answer,
)
from kes_flask.telemetry.requests import request_id

log = logging.getLogger("kes_flask.server")

BODY_KEEP = 1_000_001  # the largest route body (1 MB) plus one byte to recognise oversize
BODY_DISCARD = 4 << 20  # read and dropped beyond that so the connection stays usable
LINGER_SECONDS = 2.0  # after a closing answer, read what the client still sends, then close
STOP_LINGER_SECONDS = 2.0  # on shutdown, how long an idle kept-alive connection may still ask
SWEEP_SECONDS = 0.1
RECV_SIZE = 256 * 1024
_GO_HTTP_PREFIXES = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

PEEK, HANDSHAKE, IDLE, HEAD, BODY, BUSY, WRITE, LINGER = range(8)


@dataclass(frozen=True)
class ServingOptions:
    """Per-connection limits (seconds); Go KES's values are the defaults."""

    header_timeout: float = 5.0  # from the first byte of a request to the end of its head
    body_timeout: float = 15.0  # reading the whole body (the routes' default timeout)
    idle_timeout: float = 90.0  # a kept-alive connection without a request
    write_timeout: float = 15.0  # writing one answer (or one piece of a log stream)
    max_connections: int = 1000  # per worker; beyond it the kernel queues new connections


class Conn:
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
        self.reader: BodyReader | None = None
        self.out = b""
        self.keep = True
        self.authz: dict[str, bool] = {}

    def peer(self):
        return self.sock.kes_peer()  # type: ignore[union-attr]

    def name(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"


class KesWorker(Worker):
    """Event-loop worker; see the module docstring."""

    def init_process(self) -> None:
        # Memory locks are not inherited across fork(): every worker locks its own.
        hardening.disable_core_dumps()
        hardening.apply_memory_lock(getattr(self.cfg, "kes_mlock", hardening.MemoryLock.OFF))
        self.options: ServingOptions = getattr(self.cfg, "kes_serving", ServingOptions())
        self.conns: dict[int, Conn] = {}
        self.returned: deque[tuple[Conn, bool]] = deque()
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.sel = selectors.DefaultSelector()
        self.accepting = False
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        extensions = getattr(self.wsgi, "extensions", {})
        self.fast = FastPath(self.wsgi) if EXTENSION in extensions else None

    def _stop_streams(self) -> None:
        runtime = getattr(getattr(self, "wsgi", None), "extensions", {}).get(EXTENSION)
        if runtime is not None:
            runtime.stopping.set()

    def handle_exit(self, sig: int, frame: object) -> None:
        self._stop_streams()
        self.alive = False

    def handle_quit(self, sig: int, frame: object) -> None:
        self._stop_streams()  # SIGINT/SIGQUIT: a quick shutdown must not wait for streams
        super().handle_quit(sig, frame)

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
        self.sel.register(self.PIPE[0], selectors.EVENT_READ, None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        for _ in range(max(1, self.cfg.threads)):
            threading.Thread(target=self._handler_thread, name="kes-handler", daemon=True).start()
        self._set_accepting(True)
        last_notify = next_sweep = 0.0
        while self.alive:
            now = time.monotonic()
            if now - last_notify >= 1.0:
                self.notify()
                last_notify = now
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
            self._set_accepting(len(self.conns) < self.options.max_connections)
            self._poll(max(0.0, min(next_sweep - now, 1.0)))
            now = time.monotonic()
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + SWEEP_SECONDS
        self._drain()

    def _poll(self, timeout: float) -> None:
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

    def _drain(self) -> None:
        """SIGTERM (also the old workers of a SIGHUP reload): stop accepting, then finish.

        Connections already accepted are served — a handshake in progress completes, a request
        that arrives is answered with ``Connection: close`` — and idle kept-alive ones get
        ``STOP_LINGER_SECONDS`` for a last request, all within gunicorn's graceful timeout.
        """
        self._set_accepting(False)
        now = time.monotonic()
        deadline = now + self.cfg.graceful_timeout
        for conn in self.conns.values():
            if conn.state == IDLE:
                conn.deadline = min(conn.deadline, now + STOP_LINGER_SECONDS)
        last_notify = 0.0
        while self.conns and time.monotonic() < deadline:
            if time.monotonic() - last_notify >= 1.0:
                self.notify()
                last_notify = time.monotonic()
            self._poll(SWEEP_SECONDS)
            self._sweep(time.monotonic())
        for conn in list(self.conns.values()):
            self._close(conn)
        for listener in self.sockets:
            listener.close()

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.sockets:
            if enabled:
                self.sel.register(listener, selectors.EVENT_READ, listener)
            else:
                self.sel.unregister(listener)
        self.accepting = enabled

    def _sweep(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.state != BUSY and now >= conn.deadline:
                if conn.state in (PEEK, HANDSHAKE):
                    log_handshake_error(conn.name(), TimeoutError())
                self._close(conn)

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

    def _close(self, conn: Conn) -> None:
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
        context = self.cfg.ssl_context(self.cfg, None)
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
        try:
            first = conn.raw.recv(5, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not first:
            self._close(conn)
            return
        if first[0] != 0x16:  # not a TLS handshake record
            if len(first) < 5 and any(p.startswith(first) for p in _GO_HTTP_PREFIXES):
                return  # wait for enough bytes to tell
            if first in _GO_HTTP_PREFIXES:
                self._answer_plain_http(conn)
                return
        context = self.cfg.ssl_context(self.cfg, None)
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
            self._close(conn)
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
            self._close(conn)
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
            conn.state = IDLE
            conn.deadline = time.monotonic() + self.options.idle_timeout
        self._watch(conn, selectors.EVENT_READ)

    def _read(self, conn: Conn) -> None:
        sock = conn.sock
        try:
            data = sock.recv(RECV_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (OSError, ValueError):
            self._close(conn)
            return
        try:
            while data and sock.pending():  # type: ignore[union-attr]
                data += sock.recv(RECV_SIZE)  # decrypted bytes already buffered by OpenSSL
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except (OSError, ValueError):
            self._close(conn)
            return
        if not data:
            self._close(conn)
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
        prefix = fast.prefix_of(request.path) if fast is not None else None
        if prefix is not None:
            length = request.content_length
            declared_empty = length == 0 if length is not None else not request.chunked
            result = fast.answer(
                prefix, request.method, request.path, body, declared_empty,
                conn.peer, conn.authz, False,
            )  # fmt: skip
            if type(result) is bytes:
                rid = request_id(request.header("x-request-id"))
                self._respond(conn, ok_json_head(len(result), keep, rid) + result)
                return
        conn.state = BUSY
        self._watch(conn, 0)
        self.jobs.put((conn, body, prefix))

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
            self._close(conn)
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
            conn.raw.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self._watch(conn, selectors.EVENT_READ)

    def _linger(self, conn: Conn) -> None:
        try:
            if conn.raw.recv(RECV_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(conn)

    def _take_back(self, conn: Conn, keep: bool) -> None:
        if conn.fd not in self.conns:
            return
        try:
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        if keep and self.alive:
            self._await_request(conn)
            if conn.buffer:
                self._advance(conn)
        else:
            self._start_linger(conn)

    # --- handler threads ---------------------------------------------------------------

    def _handler_thread(self) -> None:
        while True:
            conn, body, prefix = self.jobs.get()
            keep = False
            try:
                keep = self._serve(conn, body, prefix)
            except Exception:  # a broken connection; the loop closes it
                log.debug("connection %s failed", conn.name(), exc_info=True)
            self.returned.append((conn, keep))
            try:
                os.write(self.wake_w, b"\0")
            except BlockingIOError:
                pass  # the loop is already awake

    def _serve(self, conn: Conn, body: bytes, prefix: str | None) -> bool:
        """Answer one request with blocking writes; True if the connection stays usable."""
        request, sock, keep = conn.request, conn.sock, conn.keep
        sock.settimeout(self.options.write_timeout)
        if prefix is not None:
            length = request.content_length
            declared_empty = length == 0 if length is not None else not request.chunked
            result = self.fast.answer(
                prefix, request.method, request.path, body, declared_empty,
                conn.peer, conn.authz, True,
            )  # fmt: skip
            if type(result) is bytes:
                rid = request_id(request.header("x-request-id"))
                sock.sendall(ok_json_head(len(result), keep, rid) + result)
                return keep
        environ = build_environ(request, body, sock, conn.client, conn.server)
        try:
            answer = call_app(self.wsgi, environ)
        except Exception:
            log.exception("internal error while handling the request")
            sock.sendall(INTERNAL_ERROR)
            return False
        intact = write_answer(answer, sock.sendall, not keep, request.method == "HEAD")
        return keep and intact
