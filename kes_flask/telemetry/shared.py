"""Telemetry memory shared by the gunicorn master and all its workers.

The master maps it (anonymous ``MAP_SHARED``) before it forks, so every worker, including the
ones it respawns after a crash or a SIGHUP, sees the same pages, and the pages outlive any
worker. Each worker process owns one *slot*: only that process writes the slot's fields, so a
worker records a request with a few plain stores and a process-local lock (no cross-process
lock that a killed worker could leave held). Readers sum the slots at scrape time.

Slots are handed out by the master (``assign`` in gunicorn's ``pre_fork`` hook) and are never
cleared when a worker dies: the next worker in the slot continues its counters, so the totals
never go backwards. Only the gauges of a dead worker (active requests, heap objects, log
subscribers) are zeroed by the master (``release`` in ``child_exit``).
"""

from __future__ import annotations

import mmap
import os
import socket
import threading
from collections.abc import Iterable

# Header fields (int64 each, before the slots).
H_USED = 0  # number of slots ever assigned: readers sum slots [0, used)
H_SHUTDOWN = 1  # 1 once the master is shutting the whole server down (not a reload)
H_MASTER = 2  # pid of the master (or of the only process)
HEADER_FIELDS = 8

# Fields of a slot.
F_PID = 0  # owner pid, 0 when free
F_ACTIVE = 1
F_AUDIT_EVENTS = 2
F_ERROR_EVENTS = 3
F_SUM_NS = 4  # sum of handler durations in nanoseconds
F_HEAP_OBJECTS = 5
F_SUBSCRIBERS = 6  # two fields: audit, error subscribers connected to this worker
F_DROPPED = 8  # log events this worker dropped for slow subscribers
F_BUCKETS = 16  # 11 fields: the 10 histogram bounds and +Inf, not cumulative
F_CODES = 32  # 500 fields: HTTP status 100..599
SLOT_FIELDS = F_CODES + 500  # 532 → rounded below so that slots start on a cache line
SLOT_STRIDE = 536

RING_HEADER = 64  # write position and record count (int64 each), padded
RING_SIZE = 256 * 1024
MIN_SLOTS = 16

_DOORBELL_PREFIX = b"\0kes-flask-log"


def slot_count(workers: int) -> int:
    """Room for a full set of old and new workers during a reload, plus respawns and TTIN."""
    return max(MIN_SLOTS, 4 * workers)


class SharedTelemetry:
    """Create in the master before forking; every worker then calls ``bind`` with its slot."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots
        self._fields_map = mmap.mmap(-1, 8 * (HEADER_FIELDS + slots * SLOT_STRIDE))
        self.fields = memoryview(self._fields_map).cast("q")
        self._ring_map = mmap.mmap(-1, slots * (RING_HEADER + RING_SIZE))
        self.rings = memoryview(self._ring_map)
        self.fields[H_MASTER] = os.getpid()
        self.slot = -1
        self.base = -1
        self.lock = threading.Lock()  # serialises this process's writes to its own slot
        self._doorbell: socket.socket | None = None

    # -- master side --------------------------------------------------------------------

    def assign(self, taken: Iterable[int | None]) -> int | None:
        """The lowest slot no living worker holds (None if all are taken)."""
        busy = set(taken)
        for slot in range(self.slots):
            if slot not in busy:
                if slot >= self.fields[H_USED]:
                    self.fields[H_USED] = slot + 1
                return slot
        return None

    def release(self, slot: int | None) -> None:
        """Zero a dead worker's gauges; its counters stay for the next owner of the slot."""
        if slot is None or not 0 <= slot < self.slots:
            return
        base = self.slot_base(slot)
        for offset in (F_PID, F_ACTIVE, F_HEAP_OBJECTS, F_SUBSCRIBERS, F_SUBSCRIBERS + 1):
            self.fields[base + offset] = 0

    def mark_shutdown(self) -> None:
        self.fields[H_SHUTDOWN] = 1

    # -- worker side --------------------------------------------------------------------

    def bind(self, slot: int) -> None:
        """Make this process the writer of ``slot`` (in the worker, right after fork)."""
        self.slot = slot
        self.base = self.slot_base(slot)
        self.lock = threading.Lock()
        self.fields[self.base + F_PID] = os.getpid()
        self._doorbell = None

    def bind_alone(self) -> None:
        """A single process without a gunicorn master (tests, tools): take slot 0."""
        slot = self.assign(())
        assert slot is not None
        self.bind(slot)

    @property
    def bound(self) -> bool:
        return self.slot >= 0

    @property
    def shutting_down(self) -> bool:
        return bool(self.fields[H_SHUTDOWN])

    @property
    def used(self) -> int:
        return min(self.fields[H_USED], self.slots)

    @property
    def master_pid(self) -> int:
        return self.fields[H_MASTER]

    def slot_base(self, slot: int) -> int:
        return HEADER_FIELDS + slot * SLOT_STRIDE

    def rows(self) -> list[list[int]]:
        """A copy of every used slot's fields."""
        fields = self.fields
        return [
            fields[base : base + SLOT_FIELDS].tolist()
            for base in map(self.slot_base, range(self.used))
        ]

    # -- log-stream doorbells -----------------------------------------------------------
    # A worker with log subscribers waits on a datagram socket bound to an abstract name;
    # publishers send one byte to wake it. The byte carries no data (the events are in the
    # shared rings), so a full socket queue just means a wake-up is already pending.

    def _doorbell_name(self, slot: int) -> bytes:
        return b"%s-%d-%d" % (_DOORBELL_PREFIX, self.master_pid, slot)

    def doorbell(self) -> socket.socket | None:
        """This worker's doorbell socket, or None where abstract sockets do not exist."""
        if self._doorbell is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(self._doorbell_name(self.slot))
            except OSError:
                sock.close()
                return None
            self._doorbell = sock
        return self._doorbell

    def ring_doorbell(self, slot: int, sender: socket.socket) -> None:
        try:
            sender.sendto(b"\0", socket.MSG_DONTWAIT, self._doorbell_name(slot))
        except OSError:
            pass  # no such worker any more, or a wake-up is already queued
