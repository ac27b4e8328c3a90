"""kes-flask as a gunicorn application running in this process (the master).

The master validates the configuration, connects the keystore and creates the pre-defined
keys before binding; workers (``worker.KesWorker``) each build their runtime from the
validated config, start serving, and then load the Flask app around it. The master never
imports Flask.
SIGHUP re-reads the config in the master first and only replaces the workers if the new
config is valid — an invalid file is logged and the old workers keep serving.

gunicorn handles every queued signal in turn, and each reload waits up to the graceful timeout
for the workers it replaces: a burst of SIGHUPs would become a queue of reloads with the SIGTERM
behind them (seconds each; a stop took 20 s and more). So ``KesArbiter`` skips a SIGHUP that a
reload started after it has covered (a reload reads the file as it is then), skips reloads once
a stop is queued, and cuts a reload's wait short for a stop.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from kes_flask.config.errors import ConfigError
from kes_flask.crypto import Timestamp
from kes_flask.factory import build_runtime
from kes_flask.keystore.cache import SharedGeneration
from kes_flask.runtime import Runtime
from kes_flask.server.address import gunicorn_bind
from kes_flask.server.banner import READY_LINE, RELOADED_LINE
from kes_flask.server.connection import ServingOptions
from kes_flask.server.console import KesLogger
from kes_flask.server.hardening import MemoryLock
from kes_flask.server.startup import ServerState
from kes_flask.server.worker import STOP_SIGNALS, KesWorker
from kes_flask.telemetry.shared import SharedTelemetry, slot_count

log = logging.getLogger("kes_flask.server")

DEFAULT_WORKERS = 2
DEFAULT_THREADS = 8
GRACEFUL_TIMEOUT = 10


@dataclass
class ServerOptions:
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    serving: ServingOptions = field(default_factory=ServingOptions)  # timeouts, connection cap
    mlock: MemoryLock = MemoryLock.OFF  # what workers do; the master has locked itself already
    banner: Callable[[ServerState], str] | None = None
    reload_state: Callable[[], ServerState] | None = None  # None: SIGHUP reloading disabled
    on_exit: Callable[[], None] | None = None
    log_format: str = "text"  # "text" (Go slog) or "json", for every console line


class KesArbiter(Arbiter):
    def __init__(self, app: BaseApplication) -> None:
        self.hup_received = 0.0  # when the latest SIGHUP arrived (monotonic)
        self.reload_started = float("-inf")  # when the latest reload began to read the config
        self.stop_received = False  # SIGTERM, SIGINT or SIGQUIT arrived: no more reloads
        self.reloading = False
        super().__init__(app)

    def signal(self, sig: int, frame: object) -> None:
        """The master's handler (it only queues, as gunicorn's): also note when, for coalescing."""
        if sig == signal.SIGHUP:
            self.hup_received = time.monotonic()
        elif sig in STOP_SIGNALS:
            self.stop_received = True
        super().signal(sig, frame)

    def handle_hup(self) -> None:
        app: KesApplication = self.app  # type: ignore[assignment]
        if app.options.reload_state is None:
            self.log.info("SIGHUP ignored: configuration reloading is disabled in development mode")
            return
        if self.stop_received:
            return  # the stop queued behind this signal is next: a reload would only delay it
        if self.reload_started > self.hup_received:
            log.info("SIGHUP: already covered by the reload started after it")
            return
        self.reload_started = time.monotonic()
        log.info("SIGHUP signal received. Reloading configuration...")
        try:
            app.pending = app.options.reload_state()
        except ConfigError as err:
            log.error("Failed to reload server config: %s", err)
            return
        except Exception as err:  # a reload must never take the master down
            self.log.exception("Failed to reload server config")
            log.error("Failed to reload server config: %s", err)
            return
        if self.stop_received:
            return
        self.reloading = True
        try:
            super().handle_hup()
        finally:
            self.reloading = False
        app.announce(RELOADED_LINE)

    def reap_workers(self) -> None:
        """Also gunicorn's wait, at the end of a reload, for the replaced workers (up to the
        graceful timeout): a stop signal ends that wait, and the stop begins at once."""
        super().reap_workers()
        if self.reloading and self.stop_received:
            self.log.info("Stop signal during a reload: not waiting for the old workers")
            raise StopIteration  # what gunicorn's handle_term raises: run() then halts

    def spawn_worker(self) -> int:
        """Fork with the stop signals blocked; the worker unblocks them once its handlers are
        installed (``KesWorker.init_signals``). Before that it runs the master's handler, and a
        SIGTERM from a reload that replaces it while it boots would be lost: it served on, and
        the reload waited the whole graceful timeout for it."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().spawn_worker()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # the master; in the worker: exit

    def stop(self, graceful: bool = True) -> None:
        # Tell the workers' log streams that this is the end, not a reload: they end at once.
        self.app.telemetry.mark_shutdown()  # type: ignore[attr-defined]
        super().stop(graceful)


class KesApplication(BaseApplication):
    def __init__(self, state: ServerState, options: ServerOptions) -> None:
        self.state = state
        self.pending: ServerState | None = None
        self.options = options
        self.generation = SharedGeneration()  # before fork: shared by every worker
        # Metrics and log streams of all workers; owned by the master, so they survive
        # worker crashes, respawns and SIGHUP reloads.
        self.telemetry = SharedTelemetry(slot_count(options.workers))
        self.started = Timestamp.now()
        self.started_monotonic = time.monotonic()
        super().__init__()

    def load_config(self) -> None:
        if self.pending is not None:
            if (self.pending.host, self.pending.port) != (self.state.host, self.state.port):
                log.warning("the listen address cannot change on reload; keeping the old one")
                self.pending.host, self.pending.port = self.state.host, self.state.port
            self.state, self.pending = self.pending, None
        state, options = self.state, self.options
        settings = {
            "bind": [gunicorn_bind(state.host, state.port)],
            "workers": options.workers,
            "threads": options.threads,
            "worker_class": KesWorker,
            "keepalive": max(1, round(options.serving.idle_timeout)),
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "certfile": state.config.tls.cert,
            "keyfile": state.config.tls.key,
            "ssl_context": state.tls,
            "control_socket_disable": True,
            "proc_name": "kes-flask",
            "errorlog": "-",
            "loglevel": "info",
            "accesslog": None,
            "preload_app": False,
            "when_ready": lambda _arbiter: self.announce(READY_LINE),
            "logger_class": KesLogger,
            "pre_fork": self._pre_fork,
            "post_fork": self._post_fork,
            "child_exit": self._child_exit,
        }
        for name, value in settings.items():
            self.cfg.set(name, value)
        self.cfg.kes_mlock = options.mlock  # type: ignore[attr-defined]
        self.cfg.kes_log_format = options.log_format  # type: ignore[attr-defined]
        self.cfg.kes_serving = options.serving  # type: ignore[attr-defined]

    # Telemetry slots: the master picks a free one before each fork (the worker inherits
    # the choice), the worker claims it, and the master frees it when it reaps the worker.
    def _pre_fork(self, arbiter: Arbiter, worker) -> None:
        taken = [getattr(w, "kes_slot", None) for w in arbiter.WORKERS.values()]
        worker.kes_slot = self.telemetry.assign(taken)
        if worker.kes_slot is None:
            log.error(
                "more than %d worker processes: metrics of the extra ones are not counted",
                self.telemetry.slots,
            )

    def _post_fork(self, _arbiter: Arbiter, worker) -> None:
        if worker.kes_slot is not None:
            self.telemetry.bind(worker.kes_slot)

    def _child_exit(self, _arbiter: Arbiter, worker) -> None:
        self.telemetry.release(getattr(worker, "kes_slot", None))

    def announce(self, line: str) -> None:
        if self.options.banner is not None:
            print(self.options.banner(self.state), flush=True)
        print(line, flush=True)

    def load_runtime(self) -> Runtime:
        """In the worker: the runtime its fast path serves from (no Flask yet)."""
        try:
            return build_runtime(
                self.state.config,
                generation=self.generation,
                started=self.started,
                started_monotonic=self.started_monotonic,
                telemetry=self.telemetry if self.telemetry.bound else None,
                log_format=self.options.log_format,
            )
        except ConfigError as err:
            # gunicorn would log the traceback of a worker that fails to boot; the operator
            # needs the message (the master then stops: "Worker failed to boot").
            print(f"Error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None

    def load_flask(self, runtime: Runtime):
        """In the worker, after its loop has started: the Flask app around ``runtime``.

        Imported here, not at the top: the master never needs Flask, and a worker loads it
        while it already answers the hot routes.
        """
        from kes_flask.app import create_app

        return create_app(self.state.config, runtime=runtime)

    def load(self):
        return self.load_flask(self.load_runtime())

    def run(self) -> None:
        master = os.getpid()
        try:
            KesArbiter(self).run()
        finally:
            if os.getpid() == master and self.options.on_exit is not None:
                self.options.on_exit()
