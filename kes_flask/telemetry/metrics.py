"""Request metrics in the Prometheus text format that kms-go's ``Metrics()`` parses.

Rendered by hand (api.md §10.3): counters without ``_total``/``_created`` and only the 14 KES
families, because the client rejects unknown families with more than one series.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

from kes_flask.telemetry import system

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


class Metrics:
    def __init__(self, started: float | None = None) -> None:
        self.started = started if started is not None else time.monotonic()
        self._lock = threading.Lock()
        self._by_class: dict[str, dict[int, int]] = {"success": {}, "error": {}, "failure": {}}
        self._active = 0
        self._buckets = [0] * len(BUCKETS)
        self._sum = 0.0
        self._count = 0
        self._events = {"audit": 0, "error": 0}

    def request_started(self) -> None:
        with self._lock:
            self._active += 1

    def request_finished(self, status: int, seconds: float) -> None:
        kind = "success" if status < 400 else "error" if status < 500 else "failure"
        with self._lock:
            self._active -= 1
            counter = self._by_class[kind]
            counter[status] = counter.get(status, 0) + 1
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[index] += 1
            self._sum += seconds
            self._count += 1

    def log_event_written(self, stream: str) -> None:
        with self._lock:
            self._events[stream] += 1

    def render(self) -> str:
        with self._lock:
            by_class = {kind: dict(codes) for kind, codes in self._by_class.items()}
            active, buckets = self._active, list(self._buckets)
            total, count, events = self._sum, self._count, dict(self._events)
        heap, stack = system.memory_usage()
        families: dict[str, tuple[str, list[str]]] = {
            "kes_http_request_active": ("gauge", [f"kes_http_request_active {active}"]),
            "kes_log_audit_events": ("counter", [f"kes_log_audit_events {events['audit']}"]),
            "kes_log_error_events": ("counter", [f"kes_log_error_events {events['error']}"]),
        }
        for kind, codes in by_class.items():
            if codes:
                name = f"kes_http_request_{kind}"
                lines = [f'{name}{{code="{code}"}} {n}' for code, n in sorted(codes.items())]
                families[name] = ("counter", lines)
        histogram = [
            f'kes_http_response_time_bucket{{le="{_number(bound)}"}} {n}'
            for bound, n in zip(BUCKETS, buckets, strict=True)
        ]
        histogram += [
            f'kes_http_response_time_bucket{{le="+Inf"}} {count}',
            f"kes_http_response_time_sum {_number(total)}",
            f"kes_http_response_time_count {count}",
        ]
        families["kes_http_response_time"] = ("histogram", histogram)
        uptime = int((time.monotonic() - self.started) * 100) / 100
        for name, value in (
            ("kes_system_up_time", uptime),
            ("kes_system_num_cpu", system.cpu_count()),
            ("kes_system_num_cpu_used", system.usable_cpu_count()),
            ("kes_system_num_threads", threading.active_count()),
            ("kes_system_mem_heap_used", heap),
            ("kes_system_mem_heap_objects", sys.getallocatedblocks() or len(gc.get_objects())),
            ("kes_system_mem_stack_used", stack),
        ):
            families[name] = ("gauge", [f"{name} {_number(value)}"])
        out = []
        for name in sorted(families):
            kind, lines = families[name]
            out.append(f"# HELP {name} {_HELP[name]}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"
