"""Metrics and log streams of a single-worker server (multi-worker aggregation is separate)."""

from __future__ import annotations

import itertools
import queue
import socket
import ssl
import threading
import time

import pytest

from tests.kes_server import PKI, KesServer

pytestmark = pytest.mark.e2e


PROBE_KEY = "probe-"  # wait_until_subscribed's keys
PROBE_PATH = f"/v1/key/create/{PROBE_KEY}"
_PROBES = itertools.count()  # key names unique across the calls of a test


class Stream:
    """A ``/v1/log/<kind>`` subscriber on a thread. Events land in ``events``, except the audit
    events of probe keys, which only set ``live``: then no late probe event can be taken for
    a test's own event."""

    def __init__(self, server: KesServer, kind: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.live = threading.Event()
        threading.Thread(target=self._read, args=(server, kind), daemon=True).start()

    def _read(self, server: KesServer, kind: str) -> None:
        try:
            for event in server.client("admin", timeout=60).log_stream(kind):
                if str(event.get("request", {}).get("path", "")).startswith(PROBE_PATH):
                    self.live.set()
                else:
                    self.events.put(event)
        except Exception as err:
            self.events.put(err)


def wait_until_subscribed(server: KesServer, stream: Stream, timeout: float = 60.0) -> None:
    """Create probe keys until the stream delivers one: then the subscription is live."""
    client = server.client("admin")
    deadline = time.monotonic() + timeout
    while True:
        client.create_key(f"{PROBE_KEY}{next(_PROBES)}")
        if stream.live.wait(0.2):
            break
        assert time.monotonic() < deadline, "the audit stream never delivered an event"
    client.close()


def test_audit_stream_delivers_create_and_delete_events(start_server, pki: PKI):
    server = start_server(workers=1)
    stream = Stream(server, "audit")
    wait_until_subscribed(server, stream)
    events = stream.events
    client = server.client("admin")
    client.create_key("audited")
    client.generate_key("audited")  # not audited
    client.delete_key("audited")
    created = events.get(timeout=30)
    deleted = events.get(timeout=30)
    assert created["request"]["path"] == "/v1/key/create/audited"
    assert created["request"]["identity"] == pki["admin"].identity
    assert created["request"]["ip"] == "127.0.0.1"
    assert created["response"]["code"] == 200
    assert created["response"]["time"] > 0
    assert created["time"].endswith("Z")
    assert deleted["request"]["path"] == "/v1/key/delete/audited"
    assert events.empty()
    assert "msg=\"secret key 'audited' created\"" in "\n".join(server.stdout)


def test_open_log_streams_leave_the_handler_threads_to_other_requests(start_server, pki: PKI):
    """A subscriber holds its stream as long as it likes: with one handler thread and four
    streams open, requests that need a handler thread (create, describe) are still answered."""
    server = start_server(workers=1, extra_args=("--threads", "1"))
    streams = [Stream(server, "audit") for _ in range(4)]
    for stream in streams:
        wait_until_subscribed(server, stream)  # creates keys: each needs the handler thread
    client = server.client("admin", timeout=10)
    client.create_key("while-streaming")
    assert client.describe_key("while-streaming")["name"] == "while-streaming"
    for stream in streams:  # every stream is still live
        event = stream.events.get(timeout=30)
        assert event["request"]["path"] == "/v1/key/create/while-streaming"


def test_error_stream_reports_tls_handshake_errors(start_server, pki: PKI):
    server = start_server(workers=1)
    events = Stream(server, "error").events
    anonymous = server.tls_context(None)
    for _ in range(50):  # handshakes without a certificate until the stream reports one
        with socket.create_connection(("127.0.0.1", server.port)) as plain:
            try:
                with anonymous.wrap_socket(plain, server_hostname="localhost") as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
        try:
            event = events.get(timeout=0.2)
            break
        except queue.Empty:
            continue
    else:
        raise AssertionError("the error stream never delivered an event")
    assert "TLS handshake error from 127.0.0.1" in event["message"]
    assert "level=INFO" in event["message"]


def test_metrics_count_handled_requests(start_server, pki: PKI):
    server = start_server(workers=1)
    admin, stranger = server.client("admin"), server.client("stranger")
    admin.create_key("m")
    for _ in range(3):
        admin.generate_key("m")
    try:
        admin.describe_key("missing")
    except Exception:  # noqa: S110 - the 404 is what we count
        pass
    try:
        stranger.describe_key("m")
    except Exception:  # noqa: S110 - 403s are not counted
        pass
    text = admin.metrics()
    assert 'kes_http_request_success{code="200"} 4' in text
    assert 'kes_http_request_error{code="404"} 1' in text
    assert 'kes_http_request_error{code="403"}' not in text
    assert "kes_http_response_time_count 5" in text
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert families == sorted(families) and len(families) == 13
