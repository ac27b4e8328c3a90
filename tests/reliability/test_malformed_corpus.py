"""≥ 10 000 malformed requests against a real server: no 5xx, every error JSON, no hang, and
a health probe answered every 500 requests (issue #10, acceptance 1)."""

from __future__ import annotations

import base64
import collections
import json
import re
import threading
import time
from dataclasses import dataclass, field

import pytest

from kes_flask.client import KesClient
from tests.kes_server import PKI, KesServer, config_yaml
from tests.reliability import corpus
from tests.reliability.conftest import RunRecord
from tests.reliability.rawhttp import Answer, Closed, Connection, Hang, client_context

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT = 30.0  # a hang is no answer within this (the server's own timeouts are shorter)
# gthread answers pipelined requests correctly but slowly (a buffered request waits for the next
# poll), so the bulk goes one request at a time over kept-alive connections and
# test_pipelined_requests_are_answered_in_order checks pipelining itself.
PIPELINE = 1
PROBE_EVERY = 500
IDENTITIES = ("admin", "app", "admin")

POLICY = """
policy:
  app:
    allow:
      - /v1/key/encrypt/k
      - /v1/key/generate/k
      - /v1/status
    deny:
      - /v1/key/decrypt/*
    identities:
      - {app}
"""


@dataclass
class Tally:
    answers: int = 0
    closed_without_answer: int = 0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    hangs: int = 0
    probes: int = 0
    probe_max: float = 0.0
    plaintexts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, item: corpus.Item, answer: Answer) -> None:
        problem = None
        if answer.status >= 500:
            problem = "5xx"
        elif answer.status >= 400 or answer.status == 301:
            if item.head:
                if not answer.headers.get("content-type", "").startswith("application/json"):
                    problem = "non-JSON HEAD error"
            elif answer.json_error() is None:
                problem = "non-JSON error body"
        if answer.status == 200 and b"plaintext" in answer.body:
            try:
                self.plaintexts.append(json.loads(answer.body)["plaintext"])
            except (ValueError, KeyError, TypeError):
                pass
        with self.lock:
            self.answers += 1
            self.by_status[answer.status] += 1
            if problem:
                self.failures.append(
                    f"{problem}: {item.data[:160]!r} -> {answer.status} {answer.body[:160]!r}"
                )


def probe(server: KesServer, tally: Tally) -> None:
    """A well-behaved client is still served while the corpus runs."""
    started = time.monotonic()
    client = KesClient(
        server.endpoint,
        api_key=server.pki["admin"].api_key,
        ca_file=server.pki.server_cert,
        timeout=10,
    )
    try:
        client.status()
    except Exception as err:
        with tally.lock:
            tally.failures.append(f"health probe failed: {err!r}")
    finally:
        client.close()
    with tally.lock:
        tally.probes += 1
        tally.probe_max = max(tally.probe_max, time.monotonic() - started)


def run_shared(server: KesServer, items: list[corpus.Item], identity: str, tally: Tally) -> None:
    """Keep-alive items over one connection at a time, pipelined; a closed connection is
    replaced and the unanswered requests are sent again (once)."""
    ident = server.pki[identity]
    context = client_context(server.pki.server_cert, ident.cert_file, ident.key_file)
    queue = collections.deque((item, 0) for item in items)
    conn: Connection | None = None
    while queue:
        if conn is None:
            conn = Connection(server.port, context, ANSWER_TIMEOUT)
        batch = [queue.popleft() for _ in range(min(PIPELINE, len(queue)))]
        try:
            conn.send(b"".join(item.data for item, _ in batch))
        except OSError:
            pass  # the server closed early; the answers read below say how far it got
        for index, (item, _) in enumerate(batch):
            try:
                answer = conn.answer(head_request=item.head)
            except Closed:
                unanswered = batch[index:]
                first, first_tries = unanswered[0]
                if first_tries >= 1:  # this request itself makes the server close: allowed
                    with tally.lock:
                        tally.closed_without_answer += 1
                    unanswered = unanswered[1:]
                else:
                    unanswered = [(first, first_tries + 1), *unanswered[1:]]
                queue.extendleft(reversed(unanswered))
                conn.close()
                conn = None
                break
            except Hang as err:
                with tally.lock:
                    tally.hangs += 1
                    tally.failures.append(f"hang: {item.data[:160]!r}: {err}")
                queue.extendleft(reversed(batch[index + 1 :]))
                conn.close()
                conn = None
                break
            tally.check(item, answer)
            if (tally.answers % PROBE_EVERY) == 0:
                probe(server, tally)
            if answer.closes:
                queue.extendleft(reversed(batch[index + 1 :]))
                conn.close()
                conn = None
                break
    if conn is not None:
        conn.close()


def run_solo(server: KesServer, items: list[corpus.Item], tally: Tally) -> None:
    ident = server.pki["admin"]
    context = client_context(server.pki.server_cert, ident.cert_file, ident.key_file)
    for item in items:
        conn = Connection(server.port, context, ANSWER_TIMEOUT)
        try:
            try:
                conn.send(item.data)
            except OSError:
                pass
            conn.finish_sending()
            try:
                answers = conn.rest(ANSWER_TIMEOUT)
            except Hang as err:
                with tally.lock:
                    tally.hangs += 1
                    tally.failures.append(f"hang: {item.data[:160]!r}: {err}")
                continue
            except ValueError as err:  # an answer this client cannot even parse
                with tally.lock:
                    tally.failures.append(f"unparsable answer to {item.data[:160]!r}: {err}")
                continue
        finally:
            conn.close()
        if not answers:
            with tally.lock:
                tally.closed_without_answer += 1
        for answer in answers:
            tally.check(item, answer)
            if (tally.answers % PROBE_EVERY) == 0:
                probe(server, tally)


def test_malformed_corpus(start_server, pki: PKI, run_record: RunRecord, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("corpus-keys")
    server = start_server(
        config_yaml(pki, str(workdir / "keys"), extra=POLICY.format(app=pki["app"].identity))
    )
    run_record.keystores.append(workdir / "keys")
    admin = server.client("admin")
    admin.create_key(corpus.KEY)
    admin.close()
    items = corpus.build()
    shared = [item for item in items if not item.solo]
    solo = [item for item in items if item.solo]
    tally = Tally()
    started = time.monotonic()
    slices = [shared[i :: len(IDENTITIES)] for i in range(len(IDENTITIES))]
    threads = [
        threading.Thread(target=run_shared, args=(server, part, identity, tally))
        for part, identity in zip(slices, IDENTITIES, strict=True)
    ]
    threads.append(threading.Thread(target=run_solo, args=(server, solo, tally)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for plaintext in tally.plaintexts:  # the data keys the server generated or decrypted
        run_record.secret(plaintext)
        run_record.secret(base64.b64decode(plaintext))
    for item in items:  # the plaintexts clients sent
        for match in re.finditer(rb'"plaintext": "([A-Za-z0-9+/=]{16,})"', item.data):
            run_record.secret(match.group(1).decode())
    five_xx = sum(n for status, n in tally.by_status.items() if status >= 500)
    run_record.figure(
        "malformed corpus",
        requests=len(items),
        answers=tally.answers,
        closed_without_answer=tally.closed_without_answer,
        five_xx=five_xx,
        non_json_errors=sum("non-JSON" in f for f in tally.failures),
        hangs=tally.hangs,
        health_probes=tally.probes,
        probe_max_seconds=round(tally.probe_max, 3),
        seconds=round(elapsed, 1),
        statuses=dict(sorted(tally.by_status.items())),
    )
    assert tally.failures == [], "\n".join(tally.failures[:30])
    assert len(items) >= 10_000
    assert tally.answers + tally.closed_without_answer >= len(items)
    assert tally.probes >= len(items) // PROBE_EVERY - 1
    assert server.process.poll() is None
    assert "Traceback" not in server.text()


def test_pipelined_requests_are_answered_in_order(start_server, pki: PKI):
    """Valid requests sent back to back before any answer is read: one answer each, in order."""
    server = start_server(workers=1)
    admin = server.client("admin")
    admin.create_key("k")
    admin.close()
    ident = pki["admin"]
    context = client_context(pki.server_cert, ident.cert_file, ident.key_file)
    requests = [
        (b"GET /v1/key/describe/k HTTP/1.1\r\nHost: x\r\n\r\n", 200, b'"name":"k"'),
        (b"GET /v1/key/describe/nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, b"key does not exist"),
        (
            b"PUT /v1/key/encrypt/k HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"
            b'{"plaintext":"aGk="}',
            200,
            b'"ciphertext"',
        ),
        (
            b"PUT /v1/key/encrypt/k HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{]",
            400,
            b"invalid",
        ),
        (b"GET /v1/status/x HTTP/1.1\r\nHost: x\r\n\r\n", 404, b"404 page not found"),
    ]
    conn = Connection(server.port, context, ANSWER_TIMEOUT)
    try:
        for _ in range(20):
            conn.send(b"".join(data for data, _, _ in requests))
            for data, status, needle in requests:
                answer = conn.answer()
                assert (answer.status, needle in answer.body) == (status, True), (data, answer)
    finally:
        conn.close()
