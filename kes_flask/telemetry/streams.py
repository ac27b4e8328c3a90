"""Live log streams of the whole server: every worker's events reach subscribers on any worker.

Each worker appends its events to its own ring in ``SharedTelemetry`` (one writer per ring, so
events stay in order per worker) — but only while some worker has a subscriber for that stream.
A worker with subscribers runs one tail thread that reads every ring from where it left off and
hands each event to its local subscriptions, each a bounded queue. Nothing on the request path
ever waits for a subscriber: a subscription that is full drops the event (counted), and a reader
that falls a whole ring behind skips ahead (counted). Publishers wake tail threads through a
doorbell datagram (``SharedTelemetry.ring_doorbell``); without one the tail thread polls.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import struct
import threading
from collections.abc import Callable

from kes_flask.telemetry.shared import (
    F_DROPPED,
    F_SUBSCRIBERS,
    RING_HEADER,
    RING_SIZE,
    SharedTelemetry,
)

AUDIT, ERROR = 0, 1
KINDS = {"audit": AUDIT, "error": ERROR}
SUBSCRIBER_QUEUE_SIZE = 1024
MAX_EVENT = 16 * 1024  # longer events are cut (an error line with a huge message)
_RECORD = struct.Struct("<II")  # payload length, stream kind
_SKIP = 0xFFFFFFFF  # "continue at the start of the ring"
_SAFE_LAG = RING_SIZE - (_RECORD.size + MAX_EVENT + 8)
POLL_SECONDS = 0.05  # only where there is no doorbell
IDLE_WAKE_SECONDS = 1.0

log = logging.getLogger("kes_flask.telemetry")


def _align(n: int) -> int:
    return (n + 7) & ~7


class Subscription:
    def __init__(self, streams: LogStreams, kind: int) -> None:
        self.kind = kind
        self.dropped = 0
        self._streams = streams
        self._queue: queue.Queue[str] = queue.Queue(SUBSCRIBER_QUEUE_SIZE)

    def offer(self, line: str) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def next(self, timeout: float) -> str | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._streams.unsubscribe(self)


class LogStreams:
    """The audit and error streams of this worker, joined to every other worker's."""

    def __init__(self, shared: SharedTelemetry) -> None:
        self.shared = shared
        self._fields = shared.fields
        self._local: dict[int, set[Subscription]] = {AUDIT: set(), ERROR: set()}
        self._lock = threading.Lock()  # subscriptions and the tail thread's lifetime
        self._write_lock = threading.Lock()
        self._tail: threading.Thread | None = None
        self._sender: socket.socket | None = None
        self._idle = threading.Event()  # never set: the poll interval where there is no doorbell

    # -- publishing (any thread of this worker) ------------------------------------------

    def active(self, kind: int) -> bool:
        """True if any worker has a subscriber for ``kind``: only then is an event built."""
        fields, index = self._fields, F_SUBSCRIBERS + kind
        base = self.shared.slot_base
        return any(fields[base(slot) + index] for slot in range(self.shared.used))

    def publish(self, kind: int, line: str) -> None:
        data = line.encode("utf-8", "replace")[:MAX_EVENT]
        fields, shared = self._fields, self.shared
        with self._write_lock:
            self._append(kind, data)
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            for slot in range(shared.used):
                if fields[shared.slot_base(slot) + F_SUBSCRIBERS + kind]:
                    shared.ring_doorbell(slot, self._sender)

    def _append(self, kind: int, data: bytes) -> None:
        ring = self.shared.slot * (RING_HEADER + RING_SIZE)
        header = self.shared.rings[ring : ring + RING_HEADER].cast("q")
        data_start = ring + RING_HEADER
        position = header[0]
        offset = position % RING_SIZE
        size = _RECORD.size + _align(len(data))
        if offset + size > RING_SIZE:
            _RECORD.pack_into(self.shared.rings, data_start + offset, _SKIP, 0)
            position += RING_SIZE - offset
            offset = 0
        _RECORD.pack_into(self.shared.rings, data_start + offset, len(data), kind)
        start = data_start + offset + _RECORD.size
        self.shared.rings[start : start + len(data)] = data
        header[1] += 1  # records written
        header[0] = position + size  # published last: readers never see a half record

    # -- subscribing (the worker serving a stream) --------------------------------------

    def subscribe(self, kind: int) -> Subscription:
        subscription = Subscription(self, kind)
        with self._lock:
            self._local[kind].add(subscription)
            self._count(kind)
            if self._tail is None or not self._tail.is_alive():
                reader = _RingReader(self.shared)
                self._tail = threading.Thread(
                    target=self._run_tail, args=(reader,), name="kes-log-tail", daemon=True
                )
                self._tail.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._local[subscription.kind].discard(subscription)
            self._count(subscription.kind)
        if subscription.dropped:
            self._fields[self.shared.base + F_DROPPED] += subscription.dropped
            log.warning(
                "log stream subscriber dropped %d events (it read too slowly)", subscription.dropped
            )

    def _count(self, kind: int) -> None:
        self._fields[self.shared.base + F_SUBSCRIBERS + kind] = len(self._local[kind])

    def _deliver(self, kind: int, line: str) -> None:
        for subscription in list(self._local.get(kind, ())):
            subscription.offer(line)

    def _lagged(self, skipped: int) -> None:
        for subscriptions in self._local.values():
            for subscription in list(subscriptions):
                subscription.dropped += skipped

    def _run_tail(self, reader: _RingReader) -> None:
        doorbell = self.shared.doorbell()
        wait: Callable[[], None]
        if doorbell is not None:
            doorbell.setblocking(False)

            def wait() -> None:
                select.select([doorbell], [], [], IDLE_WAKE_SECONDS)
                try:
                    while True:  # coalesce queued wake-ups
                        doorbell.recv(16)
                except OSError:
                    pass

        else:
            wait = lambda: self._idle.wait(POLL_SECONDS)  # noqa: E731
        while True:  # also while the worker drains: its streams still deliver (api/logs.py)
            with self._lock:
                if not any(self._local.values()):
                    self._tail = None
                    return
            reader.read(self._deliver, self._lagged)
            wait()


class _RingReader:
    """Where one tail thread is in every worker's ring; starts at the present (no history)."""

    def __init__(self, shared: SharedTelemetry) -> None:
        self.shared = shared
        self._positions = [self._header(slot)[0] for slot in range(shared.slots)]
        self._records = [self._header(slot)[1] for slot in range(shared.slots)]

    def _header(self, slot: int) -> memoryview:
        ring = slot * (RING_HEADER + RING_SIZE)
        return self.shared.rings[ring : ring + RING_HEADER].cast("q")

    def read(self, deliver: Callable[[int, str], None], lagged: Callable[[int], None]) -> None:
        rings = self.shared.rings
        for slot in range(self.shared.used):
            header = self._header(slot)
            data_start = slot * (RING_HEADER + RING_SIZE) + RING_HEADER
            position = self._positions[slot]
            while position != header[0]:
                if header[0] - position > _SAFE_LAG or header[0] < position:
                    lagged(max(0, header[1] - self._records[slot]))
                    position, self._records[slot] = header[0], header[1]
                    break
                offset = position % RING_SIZE
                length, kind = _RECORD.unpack_from(rings, data_start + offset)
                if length == _SKIP:
                    position += RING_SIZE - offset
                    continue
                start = data_start + offset + _RECORD.size
                data = bytes(rings[start : start + min(length, MAX_EVENT)])
                if header[0] - position > _SAFE_LAG:
                    continue  # overwritten while copying: the check above skips ahead
                position += _RECORD.size + _align(length)
                self._records[slot] += 1
                deliver(kind, data.decode("utf-8", "replace"))
            self._positions[slot] = position
