"""Request metrics of the whole server in the Prometheus text format kms-go's ``Metrics()`` parses.

Rendered by hand (api.md §10.3): counters without ``_total``/``_created`` and only the 14 KES
families, because the client rejects unknown families with more than one series (that rules
out prometheus_client's formatter, and its multiprocess mode writes one mmap file per process
and metric that a scrape must open and parse). Every worker records into its own slot of
``SharedTelemetry``; a scrape on any worker sums all slots, so every worker reports the same
totals (docs/observability.md).
"""

from __future__ import annotations

import sys
import threading
import time
from bisect import bisect_left

from kes_flask.telemetry import system
from kes_flask.telemetry.shared import (
    F_ACTIVE,
    F_AUDIT_EVENTS,
    F_BUCKETS,
    F_CODES,
    F_ERROR_EVENTS,
    F_HEAP_OBJECTS,
    F_PID,
    F_SUM_NS,
    SharedTelemetry,
)

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 3.0, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"

_HELP = {
    "kes_http_request_active": "Number of active requests that are not finished, yet.",
    "kes_http_request_error": (
        "Number of request that failed due to some error. (HTTP 4xx status code)"
    ),
    "kes_http_request_failure": (
        "Number of request that failed due to some internal failure. (HTTP 5xx status code)"
    ),
    "kes_http_request_success": "Number of requests that have been served successfully.",
    "kes_http_response_time": "Histogram of request response times spawning from 10ms to 10s.",
    "kes_log_audit_events": "Number of audit log events written to the audit log targets.",
    "kes_log_error_events": "Number of error log events written to the error log targets.",
    "kes_system_mem_heap_objects": (
        "The number of objects that are currently allocated on the heap memory."
    ),
    "kes_system_mem_heap_used": (
        "The number of bytes that are currently allocated on the heap memory."
    ),
    "kes_system_mem_stack_used": "The bytes of stack memory obtained from the OS.",
    "kes_system_num_cpu": (
        "The number of logical CPUs available on the system. It may be larger than the number of "
        "usable CPUs."
    ),
    "kes_system_num_cpu_used": (
        "The number of logical CPUs usable by the server. It may be smaller than the number of "
        "available CPUs."
    ),
    "kes_system_num_threads": "The number of concurrent co-routines/threads that currently exists.",
    "kes_system_up_time": "The time the server has been up and running in seconds.",
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_CLASSES = (("success", 200, 400), ("error", 400, 500), ("failure", 500, 600))
_EVENT_FIELD = {"audit": F_AUDIT_EVENTS, "error": F_ERROR_EVENTS}


class Metrics:
    """This worker's writer into its slot, and the renderer of the server's totals.

    ``request_started``/``request_finished`` are the whole per-request cost (measured in
    ``bench/metrics_cost.py``); a fast path outside Flask calls the same two methods.
    """

    def __init__(self, shared: SharedTelemetry, started: float | None = None) -> None:
        self.started = started if started is not None else time.monotonic()
        self.shared = shared
        self._fields = shared.fields
        self._base = shared.base
        self._lock = shared.lock

    def request_started(self) -> None:
        index = self._base + F_ACTIVE
        with self._lock:
            self._fields[index] += 1

    def request_finished(self, status: int, seconds: float) -> None:
        base, fields = self._base, self._fields
        code = base + F_CODES + (status - 100 if 100 <= status < 600 else 499)
        bucket = base + F_BUCKETS + bisect_left(BUCKETS, seconds)
        with self._lock:
            fields[base + F_ACTIVE] -= 1
            fields[code] += 1
            fields[bucket] += 1
            fields[base + F_SUM_NS] += int(seconds * 1e9)

    def log_event_written(self, stream: str) -> None:
        index = self._base + _EVENT_FIELD[stream]
        with self._lock:
            self._fields[index] += 1

    def publish_gauges(self) -> None:
        """Refresh this worker's share of the gauges only it can measure."""
        self._fields[self._base + F_HEAP_OBJECTS] = sys.getallocatedblocks()

    def render(self) -> str:
        self.publish_gauges()
        rows = self.shared.rows()
        totals = [sum(column) for column in zip(*rows, strict=True)]
        pids = [self.shared.master_pid] + [row[F_PID] for row in rows if row[F_PID]]
        processes = system.process_figures(dict.fromkeys(pids))
        families: dict[str, tuple[str, list[str]]] = {
            "kes_http_request_active": (
                "gauge",
                [f"kes_http_request_active {max(0, totals[F_ACTIVE])}"],
            ),
            "kes_log_audit_events": ("counter", [f"kes_log_audit_events {totals[F_AUDIT_EVENTS]}"]),
            "kes_log_error_events": ("counter", [f"kes_log_error_events {totals[F_ERROR_EVENTS]}"]),
        }
        for kind, low, high in _CLASSES:
            lines = [
                f'kes_http_request_{kind}{{code="{code}"}} {totals[F_CODES + code - 100]}'
                for code in range(low, high)
                if totals[F_CODES + code - 100]
            ]
            if lines:
                families[f"kes_http_request_{kind}"] = ("counter", lines)
        counts = totals[F_BUCKETS : F_BUCKETS + len(BUCKETS) + 1]
        count = sum(counts)
        histogram, cumulative = [], 0
        for bound, n in zip(BUCKETS, counts, strict=False):
            cumulative += n
            histogram.append(f'kes_http_response_time_bucket{{le="{_number(bound)}"}} {cumulative}')
        histogram += [
            f'kes_http_response_time_bucket{{le="+Inf"}} {count}',
            f"kes_http_response_time_sum {_number(totals[F_SUM_NS] / 1e9)}",
            f"kes_http_response_time_count {count}",
        ]
        families["kes_http_response_time"] = ("histogram", histogram)
        uptime = int((time.monotonic() - self.started) * 100) / 100
        for name, value in (
            ("kes_system_up_time", uptime),
            ("kes_system_num_cpu", system.cpu_count()),
            ("kes_system_num_cpu_used", system.usable_cpu_count()),
            ("kes_system_num_threads", processes.threads or threading.active_count()),
            ("kes_system_mem_heap_used", processes.heap or 1),
            ("kes_system_mem_heap_objects", totals[F_HEAP_OBJECTS] or sys.getallocatedblocks()),
            ("kes_system_mem_stack_used", processes.stack or 8 << 20),
        ):
            families[name] = ("gauge", [f"{name} {_number(value)}"])
        out = []
        for name in sorted(families):
            kind, lines = families[name]
            out.append(f"# HELP {name} {_HELP[name]}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"
