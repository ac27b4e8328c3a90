"""Process faults under load: kill -9 of a worker (every 200-answered create is on disk, whole),
SIGHUP storms (no request fails, the last configuration wins, no worker leaks, SIGTERM afterwards
stops within the graceful timeout), and SIGTERM to a worker still booting (it stops, the server
serves on)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from kes_flask.crypto import KeyVersion
from kes_flask.server.banner import RELOADED_LINE
from tests.kes_server import PKI, KesServer, config_yaml
from tests.reliability.conftest import RunRecord
from tests.reliability.rawhttp import Answer, Closed, Connection, Hang
from tests.reliability.servers import Api, wait_until

pytestmark = pytest.mark.e2e

THREADS = 4
KEEPALIVE_THREADS = 2


def serves_policy(api: Api, name: str) -> bool:
    try:
        return name.encode() in api.call("GET", "/v1/policy/list/*").body
    except (Closed, Hang, OSError):
        return False  # a worker being replaced: ask again


def serves_status(api: Api) -> bool:
    try:
        return api.call("GET", "/v1/status").status == 200
    except (Closed, Hang, OSError):
        return False


def children(server: KesServer) -> list[int]:
    pid = server.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


class _LoadThreads:
    """Client threads that run until the ``with`` block ends; answers are tallied under ``lock``."""

    def __init__(self, api: Api, request) -> None:
        self.api = api
        self.request = request  # (thread, n) -> (method, path, body)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.threads: list[threading.Thread] = []

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


class Load(_LoadThreads):
    """Threads sending one request per fresh connection until stopped; answers are tallied."""

    def __init__(self, api: Api, request) -> None:
        super().__init__(api, request)
        self.ok: list[str] = []
        self.connection_failures = 0
        self.retried: dict[str, int] = {}  # kind of first failure -> count
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(THREADS)]

    def _run(self, index: int) -> None:
        number = 0
        while not self.stop.is_set():
            method, path, body = self.request(index, number)
            number += 1
            try:
                answer = self.api.call(method, path, body)
            except (Closed, Hang, OSError) as first:
                # A connection closed before any answer is retried once, as clients do (the
                # request never reached a handler); a second failure is a failed request.
                kind = type(first).__name__
                with self.lock:
                    self.retried[kind] = self.retried.get(kind, 0) + 1
                try:
                    answer = self.api.call(method, path, body)
                except (Closed, Hang, OSError):
                    with self.lock:
                        self.connection_failures += 1
                    continue
            with self.lock:
                self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
                if answer.status == 200:
                    self.ok.append(path)

    def answered(self) -> int:
        with self.lock:
            return sum(self.statuses.values())


class ReloadLoad(_LoadThreads):
    """``THREADS`` threads with one request per fresh connection and ``KEEPALIVE_THREADS`` with
    many per kept-alive connection, for reloads: what may fail and what may be retried.

    A fresh connection must always be answered: it is never retried. A request sent on a
    kept-alive connection that the server closes before any byte of the answer is retried once
    on a new connection — HTTP's keep-alive race, which clients retry for idempotent requests
    — and counted; an answer cut short (``Hang``) or a failed retry is a failure.
    """

    def __init__(self, api: Api, request) -> None:
        super().__init__(api, request)
        self.answered = {"fresh": 0, "keepalive": 0}
        self.failures: dict[str, int] = {}  # "fresh: Closed" etc. -> count
        self.retried: dict[str, int] = {}  # kept-alive requests retried once, by first failure
        self.closed_by_server = 0  # kept-alive connections ended by a Connection: close answer
        self.threads = [threading.Thread(target=self._fresh, args=(i,)) for i in range(THREADS)]
        self.threads += [
            threading.Thread(target=self._keepalive, args=(THREADS + i,))
            for i in range(KEEPALIVE_THREADS)
        ]

    def _count(self, table: dict[str, int], kind: str) -> None:
        with self.lock:
            table[kind] = table.get(kind, 0) + 1

    def _tally(self, answer: Answer, how: str) -> None:
        with self.lock:
            self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
            self.answered[how] += 1

    def _fresh(self, index: int) -> None:
        number = 0
        while not self.stop.is_set():
            method, path, body = self.request(index, number)
            number += 1
            try:
                answer = self.api.call(method, path, body)
            except (Closed, Hang, OSError) as err:
                self._count(self.failures, f"fresh: {type(err).__name__}")
                continue
            self._tally(answer, "fresh")

    def _keepalive(self, index: int) -> None:
        conn: Connection | None = None
        number = 0
        while not self.stop.is_set():
            method, path, body = self.request(index, number)
            number += 1
            reused = conn is not None
            try:
                if conn is None:
                    conn = Connection(self.api.port, self.api.context, 30.0)
                head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                conn.send(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                answer = conn.answer()
            except (Closed, Hang, OSError) as err:
                if conn is not None:
                    conn.close()
                conn = None
                kind = type(err).__name__
                if not reused or isinstance(err, Hang):  # a new connection, or an answer cut
                    self._count(self.failures, f"{'kept-alive' if reused else 'fresh'}: {kind}")
                    continue
                self._count(self.retried, kind)
                try:
                    answer = self.api.call(method, path, body)
                except (Closed, Hang, OSError) as again:
                    self._count(self.failures, f"retry: {type(again).__name__}")
                    continue
            self._tally(answer, "keepalive" if reused else "fresh")
            if conn is not None and answer.closes:
                conn.close()
                conn = None
                with self.lock:
                    self.closed_by_server += 1
        if conn is not None:
            conn.close()


def test_kill_9_of_a_worker_under_load_loses_no_acknowledged_key(
    start_server, pki: PKI, run_record: RunRecord
):
    server = start_server(workers=2)
    keys = server.workdir / "keys"
    api = Api(server, pki)
    load = Load(api, lambda t, n: ("PUT", f"/v1/key/create/load-{t}-{n}", b""))
    with load:
        wait_until(lambda: load.answered() >= 30, 60, "creates before the kill")
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = load.answered()
        wait_until(
            lambda: victim not in children(server) and len(children(server)) == 2,
            60,
            "the master replaces the killed worker",
        )
        wait_until(lambda: load.answered() >= killed_at + 40, 60, "creates after the kill")
    assert not any(status >= 500 for status in load.statuses), load.statuses
    names = [path.rsplit("/", 1)[1] for path in load.ok]
    for name in names:  # every acknowledged create is on disk and decodes
        KeyVersion.parse((keys / name).read_bytes())
    partial = []
    for path in keys.iterdir():
        if path.name.startswith(".kes-flask-"):
            continue  # a temporary file of the killed worker: never visible as a key
        try:
            KeyVersion.parse(path.read_bytes())
        except Exception:  # any undecodable key file is a failure
            partial.append(path.name)
    temporary = [p.name for p in keys.iterdir() if p.name.startswith(".kes-flask-")]
    assert partial == []
    assert len(temporary) <= THREADS  # at most the creates in flight in the killed worker
    listing = api.call("GET", "/v1/key/list/load-*").json()["names"]
    assert set(names) <= set(listing)
    assert api.call("GET", "/v1/ready").status == 200
    run_record.figure(
        "kill -9 of a worker under create load",
        creates_answered_200=len(names),
        lost=0,
        partial_files=len(partial),
        temporary_files_left=len(temporary),
        connection_failures=load.connection_failures,
        retried_once=load.retried,
        statuses=dict(sorted(load.statuses.items())),
    )


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02])
def test_sigterm_to_a_booting_worker_stops_it(start_server, pki: PKI, delay: float):
    """A reload SIGTERMs workers the previous reload forked, maybe still booting: the signal
    must be neither lost (the worker served on, the reload waited 10 s for it) nor fatal (a
    handler that needed the runtime failed the boot, and gunicorn halted the server)."""
    server = start_server(workers=1)
    api = Api(server, pki)
    wait_until(lambda: serves_status(api), 30, "the first worker serves")  # forked after READY
    before = set(children(server))
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: set(children(server)) - before, 30, "the reload forks a worker")
    (booting,) = set(children(server)) - before
    time.sleep(delay)
    os.kill(booting, signal.SIGTERM)
    # Booted, it would drain and exit in well under a second; 8 s is below the graceful timeout
    # a lost signal costs, on a busy machine too.
    wait_until(lambda: booting not in children(server), 8, "the worker stops")
    assert server.process.poll() is None, server.text()
    wait_until(lambda: serves_status(api), 30, "a replacement worker serves")


def test_sighup_storm_under_load(start_server, pki: PKI, run_record: RunRecord, tmp_path: Path):
    keys = tmp_path / "keys"
    server = start_server(config_yaml(pki, str(keys)), workers=2)
    api = Api(server, pki)
    assert api.call("PUT", "/v1/key/create/k").status == 200
    body = b'{"context":"YWJj"}'
    load = ReloadLoad(
        api,
        lambda t, n: (
            ("GET", "/v1/key/describe/k", b"") if n % 2 else ("PUT", "/v1/key/generate/k", body)
        ),
    )
    storm = 12
    reloaded_before = sum(RELOADED_LINE in line for line in server.stdout)
    started = time.monotonic()
    with load:
        for number in range(storm):
            policy = f"policy:\n  storm-{number}:\n    allow: [/v1/status]\n"
            server.config_path.write_text(config_yaml(pki, str(keys), extra=policy))
            server.process.send_signal(signal.SIGHUP)
            time.sleep(0.25)
        server.wait_for(RELOADED_LINE, timeout=60, count=reloaded_before + 1)
        wait_until(lambda: serves_policy(api, f"storm-{storm - 1}"), 60, "the last config")
        wait_until(lambda: len(children(server)) == 2, 60, "two workers after the storm")
    elapsed = time.monotonic() - started
    assert server.process.poll() is None
    assert set(load.statuses) == {200}, load.statuses
    # A reload drops no request: not one on a fresh connection, not one half-answered.
    assert load.failures == {}, (load.failures, load.retried)
    assert load.answered["fresh"] > 0 and load.answered["keepalive"] > 0, load.answered
    # A draining worker answers a request that arrives on a kept-alive connection (with
    # Connection: close) and keeps a connection it promised keep-alive open for one more; it
    # closes one unasked only after 2 s without a request. These clients ask again at once, so
    # a retry needs a client thread stalled for 2 s: at most one per kept-alive client.
    assert sum(load.retried.values()) <= KEEPALIVE_THREADS, load.retried
    assert not [line for line in server.stderr if "graceful timeout: closing" in line]
    assert len(children(server)) == 2  # no worker leaked by overlapping reloads
    stop_started = time.monotonic()
    code = server.stop(timeout=30)  # past 30 s it is killed (-9)
    stop_seconds = time.monotonic() - stop_started
    # Reloads still queued or waiting for old workers do not delay a stop: it is bounded by
    # gunicorn's graceful timeout (10 s); a worker drains within it and exits on its own.
    assert code == 0 and stop_seconds < 15, (code, stop_seconds)
    run_record.figure(
        "SIGHUP storm under load",
        signals=storm,
        reloads=sum(RELOADED_LINE in line for line in server.stdout) - reloaded_before,
        fresh_requests=load.answered["fresh"],
        keepalive_requests=load.answered["keepalive"],
        failed=sum(load.failures.values()) + sum(n for s, n in load.statuses.items() if s != 200),
        keepalive_retried_once=load.retried,
        keepalive_closed_by_server=load.closed_by_server,
        seconds=round(elapsed, 1),
        sigterm_exit_code=code,
        seconds_to_stop=round(stop_seconds, 1),
    )
