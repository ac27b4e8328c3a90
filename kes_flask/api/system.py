"""``/version``, ``/v1/ready``, ``/v1/status``, ``/v1/metrics`` and ``/v1/api``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response

from kes_flask import __commit__, __version__
from kes_flask.api.context import runtime
from kes_flask.api.errors import KesError
from kes_flask.api.responses import add_route, empty_response, json_response
from kes_flask.api.status import status_info
from kes_flask.config.model import SECOND
from kes_flask.keystore.base import KeystoreUnreachableError
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
