"""The gunicorn worker: one event loop per process for long-lived keep-alive mTLS connections.

Why not gthread: its executor hand-off and pipe wake-up per request, and its pure-Python parser,
cost more than the request itself, and a client that stops mid-handshake or mid-header holds one
of its few threads. Here ``loop.ConnectionLoop`` owns every connection on one thread; the hot
routes (generate, encrypt, decrypt with a cached key, and a fresh status) are answered there by
``api/fast.py``. Everything that may wait — a key fetched from a remote keystore, writes, the
``/v1/log/*`` streams, every error — runs on a small pool of handler threads (``--threads``),
through the Flask app or for status the same fast path; a log stream gets a thread of its own.

The Flask app is loaded on a thread after the loop has started: importing Flask and building
the app is most of a worker's start-up, and the fast path needs only the runtime
(``factory.py``). A request that needs Flask before it is there waits for it on its thread.

gunicorn keeps the master, signals (SIGHUP reload, SIGTERM graceful drain), worker respawn and
the ``notify()`` heartbeat. A stop signal may reach a worker at any point of its boot (a reload
replaces workers that are still booting): the master forks with the stop signals blocked and the
worker unblocks them once its own handlers are in place, and the handlers only set flags that
``load_wsgi`` and ``run`` honour, so the signal is neither lost nor fatal.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from typing import Any

from gunicorn.workers.base import Worker

from kes_flask.api.fast import FastPath
from kes_flask.server import hardening
from kes_flask.server.connection import Conn, ServingOptions
from kes_flask.server.loop import SWEEP_SECONDS, ConnectionLoop
from kes_flask.server.wsgi import (
    INTERNAL_ERROR,
    build_environ,
    call_app,
    fast_answer,
    write_answer,
)

__all__ = ["STOP_SIGNALS", "KesWorker", "ServingOptions"]

log = logging.getLogger("kes_flask.server")

FLASK_WAIT_SECONDS = 60.0  # a request that needs Flask waits this long for it to load
LOG_STREAM_PREFIX = "/v1/log/"
# A /v1/log/* stream lasts as long as its subscriber: up to this many per worker get a thread of
# their own, so subscribers never take the handler threads from other requests; more streams
# share the handler threads.
STREAM_THREADS = 64
# Blocked in the master across fork() (``KesArbiter.spawn_worker``), unblocked by the worker in
# ``init_signals``: until then the child runs the master's handler, which would swallow them.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class KesWorker(Worker):
    """Event-loop worker; see the module docstring."""

    def init_process(self) -> None:
        # Memory locks are not inherited across fork(): every worker locks its own.
        hardening.disable_core_dumps()
        hardening.apply_memory_lock(getattr(self.cfg, "kes_mlock", hardening.MemoryLock.OFF))
        self.options: ServingOptions = getattr(self.cfg, "kes_serving", ServingOptions())
        self.flask_loaded = threading.Event()
        self.wsgi: Any = None
        self.jobs: queue.SimpleQueue[tuple[Conn, bytes, str | None]] = queue.SimpleQueue()
        self.stream_threads = threading.BoundedSemaphore(STREAM_THREADS)
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        # A stop signal sent since fork() is pending; it is delivered now, to our handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def load_wsgi(self) -> None:
        """gunicorn's hook for building the app: here only the runtime and its fast path."""
        if not self.alive:
            return  # stopped before the build: no keystore login for nothing
        runtime = self.runtime = self.app.load_runtime()  # type: ignore[attr-defined]
        if not self.alive:  # SIGTERM while it was built: end its background tasks (Vault renewal)
            runtime.stopping.set()
        self.fast = FastPath(runtime)
        self.loop = ConnectionLoop(
            self.options,
            lambda: self.cfg.ssl_context(self.cfg, None),
            self.fast,
            self._hand_off,
            self.log,
        )

    def _load_flask(self) -> None:
        try:
            self.wsgi = self.app.load_flask(self.runtime)  # type: ignore[attr-defined]
        except BaseException:
            log.exception("the worker cannot build its Flask app; it stops")
            self.alive = self.loop.alive = False
        finally:
            self.flask_loaded.set()

    def _stop(self) -> None:
        """From a signal handler, which may run before ``load_wsgi`` has built anything."""
        self.alive = False
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.stopping.set()  # ends log streams and background tasks
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.alive = False

    def handle_exit(self, sig: int, frame: object) -> None:
        self._stop()

    def handle_quit(self, sig: int, frame: object) -> None:
        self._stop()  # SIGINT/SIGQUIT: a quick shutdown must not wait for streams
        super().handle_quit(sig, frame)

    def run(self) -> None:
        loop = getattr(self, "loop", None)  # None when load_wsgi saw a stop signal first
        if loop is None or not self.alive:
            return  # stopped while booting: nothing accepted, nothing to drain
        loop.listen(self.sockets)
        loop.watch_pipe(self.PIPE[0])
        threading.Thread(target=self._load_flask, name="kes-flask-app", daemon=True).start()
        for _ in range(max(1, self.cfg.threads)):
            threading.Thread(target=self._handler_thread, name="kes-handler", daemon=True).start()
        last_notify = next_sweep = 0.0
        while self.alive:
            now = time.monotonic()
            if now - last_notify >= 1.0:
                self.notify()
                last_notify = now
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
            loop.set_accepting(len(loop.conns) < self.options.max_connections)
            loop.poll(max(0.0, min(next_sweep - now, 1.0)))
            now = time.monotonic()
            if now >= next_sweep:
                loop.sweep(now)
                next_sweep = now + SWEEP_SECONDS
        loop.drain(self.cfg.graceful_timeout, self.notify)

    # --- handler threads ---------------------------------------------------------------

    def _hand_off(self, conn: Conn, body: bytes, prefix: str | None) -> None:
        """From the loop: a request that may wait (or stream) goes to a thread."""
        if conn.request.path.startswith(LOG_STREAM_PREFIX) and self.stream_threads.acquire(False):
            threading.Thread(
                target=self._serve_stream, args=(conn, body), name="kes-log-stream", daemon=True
            ).start()
        else:
            self.jobs.put((conn, body, prefix))

    def _handler_thread(self) -> None:
        jobs = self.jobs
        while True:
            conn, body, prefix = jobs.get()
            self._answer(conn, body, prefix)

    def _serve_stream(self, conn: Conn, body: bytes) -> None:
        try:
            self._answer(conn, body, None)
        finally:
            self.stream_threads.release()

    def _answer(self, conn: Conn, body: bytes, prefix: str | None) -> None:
        keep = False
        try:
            keep = self._serve(conn, body, prefix)
        except Exception:  # a broken connection; the loop closes it
            log.debug("connection %s failed", conn.name(), exc_info=True)
        self.loop.give_back(conn, keep)

    def _serve(self, conn: Conn, body: bytes, prefix: str | None) -> bool:
        """Answer one request with blocking writes; True if the connection stays usable."""
        request, sock, keep = conn.request, conn.sock, conn.keep
        sock.settimeout(self.options.write_timeout)
        if prefix is not None:
            answer = fast_answer(self.fast, conn, body, prefix, may_block=True)
            if answer is not None:
                sock.sendall(answer)
                return keep
        if self.wsgi is None:
            self.flask_loaded.wait(FLASK_WAIT_SECONDS)
        environ = build_environ(request, body, sock, conn.client, conn.server)
        try:
            answer = call_app(self.wsgi, environ)
        except Exception:
            log.exception("internal error while handling the request")
            sock.sendall(INTERNAL_ERROR)
            return False
        intact = write_answer(answer, sock.sendall, not keep, request.method == "HEAD")
        return keep and intact
