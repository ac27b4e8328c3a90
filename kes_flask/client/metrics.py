"""Read ``/v1/metrics`` (Prometheus text) into the figures kms-go reads (api.md §10.3)."""

from __future__ import annotations

import math
from datetime import timedelta

from kes_flask.client.types import Metrics

_REQUEST_COUNTERS = {
    "kes_http_request_success": "request_ok",
    "kes_http_request_error": "request_err",
    "kes_http_request_failure": "request_fail",
}
_GAUGES = {
    "kes_http_request_active": "request_active",
    "kes_log_audit_events": "audit_events",
    "kes_log_error_events": "error_events",
    "kes_system_num_cpu": "cpus",
    "kes_system_num_cpu_used": "used_cpus",
    "kes_system_num_threads": "threads",
    "kes_system_mem_heap_used": "heap_alloc",
    "kes_system_mem_heap_objects": "heap_objects",
    "kes_system_mem_stack_used": "stack_alloc",
}


class MetricsError(ValueError):
    pass


def _sample(line: str) -> tuple[str, dict[str, str], float]:
    name, _, rest = line.partition("{") if "{" in line.split(" ", 1)[0] else (line, "", "")
    labels: dict[str, str] = {}
    if rest:
        label_text, _, value_text = rest.partition("}")
        for item in filter(None, (part.strip() for part in label_text.split(","))):
            key, _, value = item.partition("=")
            labels[key.strip()] = value.strip().strip('"')
    else:
        name, _, value_text = line.partition(" ")
    value = value_text.split()[0] if value_text.split() else "nan"
    return name.strip(), labels, float(value)


def parse_metrics(text: str) -> Metrics:
    values: dict[str, object] = {}
    counts: dict[str, float] = {}
    histogram: dict[timedelta, int] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            name, labels, value = _sample(line)
        except ValueError:
            raise MetricsError(f"kes: invalid metric line: {line!r}") from None
        if name in _REQUEST_COUNTERS:
            counts[name] = counts.get(name, 0) + value
        elif name == "kes_http_response_time_bucket":
            bound = labels.get("le", "")
            if bound in ("+Inf", "") or float(bound) == 0 or math.isinf(float(bound)):
                continue
            histogram[timedelta(seconds=float(bound))] = int(value)
        elif name in _GAUGES:
            values[_GAUGES[name]] = int(value)
        elif name == "kes_system_up_time":
            values["up_time"] = timedelta(seconds=value)
    for name, field_name in _REQUEST_COUNTERS.items():
        values[field_name] = int(counts.get(name, 0))
    return Metrics(latency_histogram=histogram, **values)  # type: ignore[arg-type]
