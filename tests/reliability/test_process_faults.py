"""Process faults under load: kill -9 of a worker (every 200-answered create is on disk, whole),
and SIGHUP storms (no request fails, the last configuration wins, no worker leaks)."""

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
from tests.reliability.rawhttp import Closed, Hang
from tests.reliability.servers import Api, wait_until

pytestmark = pytest.mark.e2e

THREADS = 4


def serves_policy(api: Api, name: str) -> bool:
    try:
        return name.encode() in api.call("GET", "/v1/policy/list/*").body
    except (Closed, Hang, OSError):
        return False  # a worker being replaced: ask again


def children(server: KesServer) -> list[int]:
    pid = server.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


class Load:
    """Threads sending one request per fresh connection until stopped; answers are tallied."""

    def __init__(self, api: Api, request) -> None:
        self.api = api
        self.request = request  # (thread, n) -> (method, path, body)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok: list[str] = []
        self.statuses: dict[int, int] = {}
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

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def answered(self) -> int:
        with self.lock:
            return sum(self.statuses.values())


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


def test_sighup_storm_under_load(start_server, pki: PKI, run_record: RunRecord, tmp_path: Path):
    keys = tmp_path / "keys"
    server = start_server(config_yaml(pki, str(keys)), workers=2)
    api = Api(server, pki)
    assert api.call("PUT", "/v1/key/create/k").status == 200
    body = b'{"context":"YWJj"}'
    load = Load(
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
    assert not any(status >= 500 for status in load.statuses), load.statuses
    assert set(load.statuses) == {200}, load.statuses
    # Every request is answered 200 or (a fresh connection reset by a worker that is being
    # replaced, twice in a row) never reaches a handler; gthread resets none, the event-loop
    # worker a few — reported in docs/reliability.md, bounded here so a regression shows.
    assert load.connection_failures <= max(3, load.answered() // 20), load.retried
    assert len(children(server)) == 2  # no worker leaked by overlapping reloads
    stop_started = time.monotonic()
    code = server.stop(timeout=20)  # graceful_timeout is 10 s; past 20 s it is killed (-9)
    stop_seconds = time.monotonic() - stop_started
    run_record.figure(
        "SIGHUP storm under load",
        signals=storm,
        reloads=sum(RELOADED_LINE in line for line in server.stdout) - reloaded_before,
        requests=load.answered(),
        failed=load.connection_failures + sum(n for s, n in load.statuses.items() if s != 200),
        retried_once=load.retried,
        seconds=round(elapsed, 1),
        sigterm_exit_code=code,
        seconds_to_stop=round(stop_seconds, 1),
    )
