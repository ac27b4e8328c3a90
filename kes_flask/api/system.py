"""``/version``, ``/v1/ready``, ``/v1/status``, ``/v1/metrics`` and ``/v1/api``."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response

from kes_flask import __commit__, __version__
from kes_flask.api.errors import KesError
from kes_flask.api.responses import add_route, empty_response, json_response
from kes_flask.config.model import SECOND
from kes_flask.keystore.base import KeystoreUnreachableError
from kes_flask.runtime import Runtime, runtime
from kes_flask.telemetry import system
from kes_flask.telemetry.metrics import CONTENT_TYPE

bp = Blueprint("system", __name__)
log = logging.getLogger("kes_flask.api")


def version() -> Response:
    return json_response({"version": __version__, "commit": __commit__})


def ready() -> Response:
    try:
        runtime().keys.status()
    except KeystoreUnreachableError as err:
        log.warning("key store is not reachable: %s", err)
        raise KesError(504, "key store is not reachable") from None
    except Exception as err:  # noqa: BLE001 - every other backend failure is 502
        log.warning("key store is unavailable: %s", err)
        raise KesError(502, "key store is unavailable") from None
    return empty_response()


def status() -> Response:
    return json_response(status_info(runtime()))


def status_info(rt: Runtime) -> dict[str, object]:
    """``/v1/status``'s answer; shared with the worker's fast path (``api/fast.py``)."""
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


def metrics() -> Response:
    return Response(runtime().metrics.render(), status=200, content_type=CONTENT_TYPE)


def api() -> Response:
    routes = runtime().routes.values()
    return json_response(
        [
            {
                "method": route.method,
                "path": route.path,
                "max_body": route.max_body,
                "timeout": route.timeout // SECOND,
            }
            for route in routes
        ]
    )


for _view in (version, ready, status, metrics, api):
    add_route(bp, _view)
