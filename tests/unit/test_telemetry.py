"""Shared telemetry memory: slots, metric sums, the log rings, request ids, ``log.audit: all``."""

from __future__ import annotations

import json
import time

import pytest

from kes_flask.config import ConfigError, parse_config
from kes_flask.telemetry.logs import json_line, slog_line
from kes_flask.telemetry.metrics import Metrics
from kes_flask.telemetry.requests import request_id
from kes_flask.telemetry.shared import RING_SIZE, SharedTelemetry
from kes_flask.telemetry.streams import AUDIT, ERROR, MAX_EVENT, LogStreams, _RingReader

ADMIN = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d"
HEAD = f"admin:\n  identity: {ADMIN}\ntls:\n  key: k\n  cert: c\nkeystore:\n  fs:\n    path: /k\n"


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def two_workers() -> tuple[SharedTelemetry, Metrics, Metrics]:
    """Two slots written from one process, as two workers would."""
    shared = SharedTelemetry(4)
    first = shared.assign(())
    shared.bind(first)
    one = Metrics(shared, time.monotonic())
    shared.bind(shared.assign([first]))
    return shared, one, Metrics(shared, time.monotonic())


def test_a_scrape_sums_every_slot():
    _, one, two = two_workers()
    for metrics, status in ((one, 200), (two, 200), (two, 404), (one, 502)):
        metrics.request_started()
        metrics.request_finished(status, 0.02)
    two.request_started()  # still running
    values = samples(one.render())
    assert values == samples(two.render()) | {
        k: v for k, v in values.items() if k.startswith("kes_system")
    }
    assert values['kes_http_request_success{code="200"}'] == 2
    assert values['kes_http_request_error{code="404"}'] == 1
    assert values['kes_http_request_failure{code="502"}'] == 1
    assert values["kes_http_request_active"] == 1
    assert values['kes_http_response_time_bucket{le="0.01"}'] == 0
    assert values['kes_http_response_time_bucket{le="0.05"}'] == 4
    assert values["kes_http_response_time_count"] == 4
    assert values["kes_http_response_time_sum"] == pytest.approx(0.08)


def test_a_dead_workers_counters_stay_and_its_gauges_go():
    shared, one, two = two_workers()
    two.request_started()
    two.request_finished(200, 0.001)
    two.request_started()  # killed mid-request
    shared.release(1)
    values = samples(one.render())
    assert values["kes_http_request_active"] == 0
    assert values['kes_http_request_success{code="200"}'] == 1
    assert shared.assign([0]) == 1  # the next worker continues in the freed slot
    shared.bind(1)
    successor = Metrics(shared, time.monotonic())
    successor.request_started()
    successor.request_finished(200, 0.001)
    assert samples(one.render())['kes_http_request_success{code="200"}'] == 2


def test_slots_are_never_handed_out_twice():
    shared = SharedTelemetry(3)
    assert [shared.assign([]), shared.assign([0]), shared.assign([0, 1])] == [0, 1, 2]
    assert shared.assign([0, 1, 2]) is None
    assert shared.used == 3


def read_all(reader: _RingReader) -> tuple[list[tuple[int, str]], list[int]]:
    got, lagged = [], []
    reader.read(lambda kind, line: got.append((kind, line)), lagged.append)
    return got, lagged


def test_the_ring_keeps_order_across_wrap_arounds():
    shared = SharedTelemetry(1)
    shared.bind_alone()
    streams = LogStreams(shared)
    reader = _RingReader(shared)
    sent = []
    for round_ in range(6):  # each round writes about half the ring, read in between
        for index in range(40):
            line = json.dumps({"n": round_ * 1000 + index, "pad": "x" * (3000 + index)})
            streams.publish(AUDIT if index % 2 else ERROR, line)
            sent.append((AUDIT if index % 2 else ERROR, line))
        got, lagged = read_all(reader)
        assert lagged == []
        assert got == sent
        sent.clear()


def test_a_reader_that_falls_a_ring_behind_skips_ahead_and_counts():
    shared = SharedTelemetry(1)
    shared.bind_alone()
    streams = LogStreams(shared)
    reader = _RingReader(shared)
    events = 2 * RING_SIZE // 1000
    for index in range(events):
        streams.publish(AUDIT, f"{index:04d}" + "y" * 996)
    got, lagged = read_all(reader)
    assert got == [] and lagged == [events]
    streams.publish(AUDIT, "after")
    assert read_all(reader) == ([(AUDIT, "after")], [])


def test_events_are_cut_at_the_maximum_size():
    shared = SharedTelemetry(1)
    shared.bind_alone()
    streams = LogStreams(shared)
    reader = _RingReader(shared)
    streams.publish(ERROR, "z" * (MAX_EVENT + 100))
    ((kind, line),) = read_all(reader)[0]
    assert kind == ERROR and len(line) == MAX_EVENT


def test_subscriptions_get_local_and_other_workers_events_and_count_drops():
    shared = SharedTelemetry(2)
    shared.bind(shared.assign(()))
    other = LogStreams(shared)  # "worker 0" publishes
    shared.bind(shared.assign([0]))
    mine = LogStreams(shared)  # "worker 1" subscribes
    subscription = mine.subscribe(AUDIT)
    assert other.active(AUDIT) and not other.active(ERROR)
    other.publish(AUDIT, "from worker 0")
    assert subscription.next(5) == "from worker 0"
    subscription.close()
    assert not other.active(AUDIT)


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("a b", False),
        ("", False),
        (None, False),
        ('x"y', False),
        ("trace:1/2+3=4@5.6_7", True),
        ("é", False),
    ],
)
def test_request_ids(incoming, kept):
    made = request_id(incoming)
    if kept:
        assert made == incoming
    else:
        assert len(made) == 32 and int(made, 16) >= 0 and made != incoming


def test_console_line_formats_carry_the_same_fields():
    attrs = {"req.id": "r1", "req.path": "/v1/key/create/a b"}
    text = slog_line("INFO", "hello world", attrs, 0)
    assert text == 'time=1970-01-01T00:00:00.000Z level=INFO msg="hello world" req.id=r1 ' + (
        'req.path="/v1/key/create/a b"'
    )
    assert json.loads(json_line("INFO", "hello world", attrs, 0)) == {
        "time": "1970-01-01T00:00:00.000Z",
        "level": "INFO",
        "msg": "hello world",
        **attrs,
    }


@pytest.mark.parametrize("written", ["all", "ALL", " All "])
def test_log_audit_all(written):
    config = parse_config(HEAD + f"log:\n  audit: '{written}'\n", {}, "config.yml")
    assert config.log.audit_all and config.log.audit == 0


def test_log_audit_default_stays_upstreams():
    config = parse_config(HEAD, {}, "config.yml")
    assert not config.log.audit_all and config.log.audit == 0
    with pytest.raises(ConfigError, match=r"strconv\.Atoi"):
        parse_config(HEAD + "log:\n  audit: everything\n", {}, "config.yml")
