"""``/v1/status``'s answer, without Flask: the worker's fast path serves it before Flask loads."""

from __future__ import annotations

import logging
import time

from kes_flask import __version__
from kes_flask.runtime import Runtime
from kes_flask.telemetry import system

log = logging.getLogger("kes_flask.api")


def status_info(rt: Runtime) -> dict[str, object]:
    """``/v1/status``'s answer, probing the keystore; the Flask view and the worker's fast path
    (``api/fast.py``, which caches it briefly) both answer with it."""
    heap, stack = system.memory_usage()
    info: dict[str, object] = {
        "version": __version__,
        "os": system.go_os(),
        "arch": system.go_arch(),
        "uptime": round(time.monotonic() - rt.started_monotonic),
        "num_cpu": system.cpu_count(),
        "num_cpu_used": system.usable_cpu_count(),
        "mem_heap_used": heap,
        "mem_stack_used": stack,
    }
    try:
        latency = rt.keys.status()
    except Exception as err:  # noqa: BLE001 - status reports any failure, never fails
        log.debug("key store status failed: %s", err)
        info["keystore_unreachable"] = True  # parity: no keystore_unavailable (Decision Q4)
    else:
        info["keystore_latency"] = max(1, round(latency * 1000))  # milliseconds (Q5)
    return info
