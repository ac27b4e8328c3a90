"""Metrics, log streams and request ids of a server with 3 gunicorn workers (issue #8).

Every test talks to a real ``kes-flask server`` over fresh TLS connections, so requests and
scrapes land on different workers. Where the test may read the workers' file descriptors
(``/proc/<pid>/fd``) it also checks which worker served a connection; otherwise it opens
more connections so that several workers are covered with near certainty.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import threading
import time

import pytest

from kes_flask.client import KesServerError
from kes_flask.server.banner import RELOADED_LINE
from tests.kes_server import PKI, KesServer, config_yaml

pytestmark = pytest.mark.e2e

WORKERS = 3
SOAK = 1200  # more events than a subscription queue holds (streams.SUBSCRIBER_QUEUE_SIZE)
COUNTERS = ("kes_http_request_", "kes_http_response_time", "kes_log_")


# -- helpers -----------------------------------------------------------------------------


def _connection(server: KesServer, name: str | None = "admin") -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=server.tls_context(name), timeout=30
    )
    conn.connect()
    return conn


def worker_of(server: KesServer, client_port: int) -> int | None:
    """PID of the worker holding the server side of the connection from ``client_port``."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    local, remote = fields[1], fields[2]
                    if (
                        int(local.rsplit(":", 1)[1], 16) == server.port
                        and int(remote.rsplit(":", 1)[1], 16) == client_port
                    ):
                        inode = fields[9]
        except OSError:
            continue
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    try:
        for pid in server.worker_pids():
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
    except OSError:
        return None  # not allowed to look (workers are not dumpable): unknown
    return None


def parse_metrics(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def scrape(server: KesServer) -> tuple[int | None, dict[str, float]]:
    """One scrape over a fresh connection: (worker pid or None, samples)."""
    conn = _connection(server)
    try:
        port = conn.sock.getsockname()[1]
        conn.request("GET", "/v1/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return worker_of(server, port), parse_metrics(body)
    finally:
        conn.close()


def counters(samples: dict[str, float]) -> dict[str, float]:
    return {
        name: value
        for name, value in samples.items()
        if name.startswith(COUNTERS) and name != "kes_http_request_active"
    }


def fresh_request(server: KesServer, method: str, path: str, body: bytes = b"", **headers):
    conn = _connection(server)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def create_on_some_worker(server: KesServer, key: str) -> int | None:
    """Create ``key`` over a fresh connection; the pid of the worker that served it, if visible."""
    conn = _connection(server)
    try:
        worker = worker_of(server, conn.sock.getsockname()[1])
        conn.request("PUT", f"/v1/key/create/{key}")
        response = conn.getresponse()
        assert response.status == 200, response.read()
        return worker
    finally:
        conn.close()


def generate(server: KesServer, key: str) -> None:
    status, _, payload = fresh_request(server, "PUT", f"/v1/key/generate/{key}", b"{}")
    assert status == 200, payload


PROBE = "/v1/key/create/probe-"  # wait_until_subscribed's keys


def is_probe(event: dict) -> bool:
    return str(event.get("request", {}).get("path", "")).startswith(PROBE)


class Subscriber:
    """A ``/v1/log/<kind>`` stream on its own connection; events land in ``events``, except
    the audit events of probe keys, which only set ``live``: one can come at any time after
    wait_until_subscribed, since other workers' events may be late on a busy machine."""

    def __init__(self, server: KesServer, kind: str) -> None:
        self.conn = _connection(server)
        self.port = self.conn.sock.getsockname()[1]
        self.conn.request("GET", f"/v1/log/{kind}")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.worker = worker_of(server, self.port)
        self.events: queue.Queue = queue.Queue()
        self.live = threading.Event()  # a probe event arrived: the subscription delivers
        self.ended = threading.Event()  # the server ended the stream
        self.error: Exception | None = None  # how, if not cleanly
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response:
                if not line.strip():
                    continue
                event = json.loads(line)
                if is_probe(event):
                    self.live.set()
                else:
                    self.events.put(event)
        except Exception as err:
            self.error = err
        self.ended.set()

    def take(self, until, timeout: float = 30.0) -> list[dict]:
        """Events until ``until(collected)`` is true (or the timeout passes)."""
        collected: list[dict] = []
        deadline = time.monotonic() + timeout
        while not until(collected) and time.monotonic() < deadline:
            try:
                collected.append(self.events.get(timeout=0.2))
            except queue.Empty:
                continue
        return collected

    def close(self) -> None:
        try:  # unblocks the reader thread (it holds the response's buffer lock)
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def subscribers_on_two_workers(server: KesServer, kind: str) -> list[Subscriber]:
    subscribers = [Subscriber(server, kind), Subscriber(server, kind)]
    while len(subscribers) < 12:
        workers = {s.worker for s in subscribers}
        if None in workers and len(subscribers) >= 4:
            break  # cannot see the workers: four subscribers over three workers
        if None not in workers and len(workers) >= 2:
            break
        subscribers.append(Subscriber(server, kind))
    return subscribers


_PROBES = itertools.count()


def wait_until_subscribed(
    server: KesServer, subscribers: list[Subscriber], timeout: float = 60.0
) -> int:
    """Create probe keys until every subscriber got one; return the number of probes (counted
    requests). Subscribers never queue probe events, so nothing needs draining afterwards."""
    deadline = time.monotonic() + timeout
    probes = 0
    while True:
        probes += 1
        status, _, _ = fresh_request(server, "PUT", f"{PROBE}{next(_PROBES)}")
        assert status == 200
        pending = [s for s in subscribers if not s.live.wait(0.1)]
        if not pending:
            return probes
        assert time.monotonic() < deadline, "some subscriptions never became live"


def anonymous_handshake(server: KesServer) -> int:
    """A TLS handshake without a client certificate (an error-log event); its client port."""
    context = server.tls_context(None)
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        port = plain.getsockname()[1]
        try:
            with context.wrap_socket(plain, server_hostname="localhost") as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
    return port


def worker_memory(server: KesServer) -> int:
    total = 0
    for pid in server.worker_pids():
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: PKI):
    """One 3-worker server for the tests below (they run in file order; the last one breaks
    its key store). ``log.audit: all`` audits every generate, so streams get plenty."""
    workdir = tmp_path_factory.mktemp("obs-workers")
    config = config_yaml(pki, str(workdir / "keys"), extra="log:\n  audit: all\n")
    # Every open stream holds a handler thread of its worker, and the subscriber tests open up
    # to 24 (more when connections keep landing on one worker): give each worker room for all.
    server = KesServer(workdir, pki, config, workers=WORKERS)
    server.start()
    yield server
    server.stop(signal.SIGINT)  # quick shutdown: nothing left to test in it


# -- metrics -----------------------------------------------------------------------------


def test_every_worker_reports_the_server_totals(server: KesServer):
    server.client("admin").create_key("agg")
    _, before = scrape(server)
    requests = 30
    for _ in range(requests):
        generate(server, "agg")
    # Which worker accepts a fresh connection is up to the scheduler: on a busy machine one
    # can lose the race many times in a row, so scrape until each has answered (or 60 s).
    seen_workers, reports = set(), []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker, samples = scrape(server)
        seen_workers.add(worker)
        reports.append(counters(samples))
        if len(reports) >= 9 and (None in seen_workers or len(seen_workers) == WORKERS):
            break
        time.sleep(0.02 * (len(reports) % 5))  # vary the timing of the next accept
    assert None in seen_workers or len(seen_workers) == WORKERS, seen_workers
    assert all(report == reports[0] for report in reports), reports
    after = reports[0]
    count = "kes_http_response_time_count"
    success = 'kes_http_request_success{code="200"}'
    assert after[count] == before[count] + requests
    assert after[success] == before[success] + requests
    assert after['kes_http_response_time_bucket{le="+Inf"}'] == after[count]


def test_counters_never_go_backwards_across_sigkill_and_sighup(start_server):
    server = start_server(workers=WORKERS)
    server.client("admin").create_key("mono")
    history: list[dict[str, float]] = []
    stop = threading.Event()

    def keep_scraping() -> None:
        while not stop.is_set():
            try:
                history.append(counters(scrape(server)[1]))
            except (OSError, http.client.HTTPException, AssertionError):
                pass  # a worker restarting under our feet
            time.sleep(0.05)

    scraper = threading.Thread(target=keep_scraping, daemon=True)
    scraper.start()
    for _ in range(10):
        generate(server, "mono")
    for attempt in range(2):  # the hot-route fast path sets the id too (uncached, then cached)
        status, headers, _ = fresh_request(
            server, "PUT", "/v1/key/generate/mono", b"{}", **{"X-Request-Id": f"fast-{attempt}"}
        )
        assert (status, headers["X-Request-Id"]) == (200, f"fast-{attempt}")
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the master respawns the worker
        pids = server.worker_pids()
        if victim not in pids and len(pids) == WORKERS:
            break
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)
    for _ in range(10):
        generate(server, "mono")
    # A stream on an old worker keeps delivering, also the new workers' events, while that
    # worker drains after SIGHUP; then it ends cleanly (api/logs.py DRAIN_SECONDS).
    stream = Subscriber(server, "audit")
    probes = wait_until_subscribed(server, [stream])
    reloaded = sum(RELOADED_LINE in line for line in server.stdout)
    booted = sum("Booting worker" in line for line in server.stderr)
    server.process.send_signal(signal.SIGHUP)
    server.wait_for("Booting worker", count=booted + WORKERS)
    created = []
    for index in range(3):
        status, _, _ = fresh_request(server, "PUT", f"/v1/key/create/after-hup-{index}")
        created.append(status)
    events = stream.take(lambda got: len(got) >= 3)
    assert created == [200] * 3
    assert [e["request"]["path"] for e in events] == [
        f"/v1/key/create/after-hup-{i}" for i in range(3)
    ]
    assert stream.ended.wait(30) and stream.error is None, stream.error
    server.wait_for(RELOADED_LINE, count=reloaded + 1)
    for _ in range(10):
        generate(server, "mono")
    stop.set()
    scraper.join(30)
    _, final = scrape(server)
    # every create and generate, none lost or counted twice
    assert final["kes_http_response_time_count"] == 1 + 32 + probes + 3
    assert len(history) > 5
    for name in history[-1]:
        values = [report[name] for report in history if name in report]
        assert values == sorted(values), f"{name} went backwards: {values}"
    server.stop(signal.SIGINT)


# -- log streams -------------------------------------------------------------------------


def test_subscribers_on_different_workers_see_every_event(server: KesServer):
    audit = subscribers_on_two_workers(server, "audit")
    errors = subscribers_on_two_workers(server, "error")
    try:
        wait_until_subscribed(server, audit)
        keys = [f"fan-{index}" for index in range(20)]
        served_by = {f"/v1/key/create/{key}": create_on_some_worker(server, key) for key in keys}
        ports = [anonymous_handshake(server) for _ in range(6)]
        expected_paths = {f"/v1/key/create/{key}" for key in keys}
        for subscriber in audit:
            events = subscriber.take(lambda got: len(got) >= len(keys))
            paths = [event["request"]["path"] for event in events]
            assert sorted(paths) == sorted(expected_paths), (subscriber.worker, paths)
            for worker in set(served_by.values()) - {None}:  # in order per producing worker
                mine = [path for path in paths if served_by[path] == worker]
                assert mine == [path for path in served_by if served_by[path] == worker], paths
            assert all(len(event["request"]["id"]) == 32 for event in events)
        for subscriber in errors:

            def complete(got: list[dict]) -> bool:
                text = "\n".join(event["message"] for event in got)
                return all(f"127.0.0.1:{port}:" in text for port in ports)

            events = subscriber.take(complete)
            assert complete(events), (subscriber.worker, events)
        workers = {s.worker for s in audit}
        assert None in workers or len(workers) >= 2, workers
    finally:  # a failure must not leave streams holding the module server's threads
        for subscriber in audit + errors:
            subscriber.close()


def test_a_stalled_subscriber_never_slows_requests_and_memory_stays_flat(server: KesServer):
    # log.audit: all audits every generate: each request sends the stalled streams an event.
    server.client("admin").create_key("stall")
    stalled = []
    for _ in range(WORKERS):  # one stalled subscriber per worker, most likely
        plain = socket.socket()
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        plain.connect(("127.0.0.1", server.port))
        plain.settimeout(30)  # fail, never hang, if no stream is answered
        tls = server.tls_context("admin").wrap_socket(plain, server_hostname="localhost")
        stalled.append(tls)  # never read again after the status line
        tls.sendall(b"GET /v1/log/audit HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(12) == b"HTTP/1.1 200"
    slowest = 0.0
    for _ in range(200):
        started = time.monotonic()
        generate(server, "stall")
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 2.0, slowest
    client = server.client("admin")  # keep-alive: a quick soak
    for _ in range(SOAK):  # fills the stalled streams' socket buffers and queues
        client.generate_key("stall")
    warm = worker_memory(server)
    for _ in range(SOAK):
        client.generate_key("stall")
    grown = worker_memory(server) - warm
    assert grown < 4 << 20, f"workers grew by {grown} bytes over {SOAK} audited requests"
    for tls in stalled:
        tls.close()


# -- request ids -------------------------------------------------------------------------


def test_request_ids_tag_responses_audit_events_and_error_lines(server: KesServer):
    status, headers, _ = fresh_request(server, "GET", "/v1/status")
    assert status == 200 and len(headers["X-Request-Id"]) == 32
    status, headers, _ = fresh_request(server, "GET", "/nope", **{"X-Request-Id": "bad id"})
    assert status == 404 and headers["X-Request-Id"] != "bad id"
    audit, errors = Subscriber(server, "audit"), Subscriber(server, "error")
    wait_until_subscribed(server, [audit])
    status, headers, _ = fresh_request(
        server, "PUT", "/v1/key/create/traced", **{"X-Request-Id": "trace-42.a"}
    )
    assert status == 200 and headers["X-Request-Id"] == "trace-42.a"
    events = audit.take(lambda got: any(e["request"].get("id") == "trace-42.a" for e in got))
    assert any(e["request"]["path"] == "/v1/key/create/traced" for e in events), events
    server.wait_for("req.id=trace-42.a")  # the console audit line on stdout
    status, headers, _ = fresh_request(  # log.audit: all audits every key use
        server, "PUT", "/v1/key/generate/traced", b"{}", **{"X-Request-Id": "gen-7"}
    )
    assert (status, headers["X-Request-Id"]) == (200, "gen-7")
    used = audit.take(lambda got: any(e["request"].get("id") == "gen-7" for e in got))
    assert any(e["request"]["path"] == "/v1/key/generate/traced" for e in used), used
    server.wait_for("secret key 'traced' used: generate")
    keys = server.workdir / "keys"  # a key store that fails: the handler logs an error
    shutil.rmtree(keys)
    keys.write_text("")
    status, headers, _ = fresh_request(
        server, "PUT", "/v1/key/create/broken", **{"X-Request-Id": "trace-43"}
    )
    assert status >= 500, status
    lines = errors.take(lambda got: any("trace-43" in e["message"] for e in got))
    assert any("req.id=trace-43" in line["message"] for line in lines), lines
    with pytest.raises(KesServerError):  # log.audit: all audits the denied request
        server.client("stranger").describe_key("traced")
    denied = audit.take(lambda got: any(e["response"]["code"] == 403 for e in got))
    assert any(e["response"]["code"] == 403 for e in denied), denied
    server.wait_for("request denied")
    audit.close()
    errors.close()


def test_json_console_format(start_server):
    server = start_server(workers=1, extra_args=("--log-format", "json"))
    server.client("admin").create_key("json-audited")
    server.wait_for("json-audited")
    booted = [line for line in server.stderr if "Booting worker" in line]
    assert booted and json.loads(booted[0])["level"] == "INFO"
    audit = [json.loads(line) for line in server.stdout if "json-audited" in line]
    assert audit[0]["msg"] == "secret key 'json-audited' created"
    assert audit[0]["req.path"] == "/v1/key/create/json-audited"
    server.stop(signal.SIGINT)
