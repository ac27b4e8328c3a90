"""The Flask application factory: one app per worker process, built from a validated config."""

from __future__ import annotations

import logging
import threading
import time
from typing import IO

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from kes_flask.api import identity, keys, logs, pipeline, policy, system
from kes_flask.api.errors import NOT_FOUND, KesError, error_response, redirect_response
from kes_flask.api.routes import configure_routes
from kes_flask.auth.peer import Identify, identify_gunicorn_peer
from kes_flask.auth.policy import PolicySet
from kes_flask.config.model import ServerConfig
from kes_flask.crypto import Timestamp
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import Keystore
from kes_flask.keystore.cache import KeyCache, LocalGeneration, SharedGeneration
from kes_flask.runtime import EXTENSION, Runtime
from kes_flask.telemetry.logs import AuditLog, configure_error_log, hubs
from kes_flask.telemetry.metrics import Metrics
from kes_flask.telemetry.shared import SharedTelemetry
from kes_flask.telemetry.streams import LogStreams

log = logging.getLogger("kes_flask.api")


def create_app(
    config: ServerConfig,
    *,
    keystore: Keystore | None = None,
    generation: SharedGeneration | LocalGeneration | None = None,
    identify: Identify = identify_gunicorn_peer,
    started: Timestamp | None = None,
    started_monotonic: float | None = None,
    start_background_tasks: bool = True,
    audit_stream: IO[str] | None = None,
    error_stream: IO[str] | None = None,
    telemetry: SharedTelemetry | None = None,
    log_format: str = "text",
) -> Flask:
    """Build the app. ``started`` is the server's start (kept across worker restarts);
    ``telemetry`` is the memory the gunicorn master shares with its workers (bound to this
    worker's slot), or None for a single process."""
    app = Flask("kes_flask")
    app.url_map.merge_slashes = False  # unclean paths are redirected by the pipeline
    for blueprint in (system.bp, keys.bp, policy.bp, identity.bp, logs.bp):
        app.register_blueprint(blueprint)
    pipeline.install(app)
    _install_error_handlers(app)

    if telemetry is None:
        telemetry = SharedTelemetry()
    if not telemetry.bound:
        telemetry.bind_alone()
    streams = LogStreams(telemetry)
    error_hub, audit_hub = hubs(streams)
    configure_error_log(config.log.error, error_hub, error_stream, log_format)
    stopping = threading.Event()  # set by the worker on exit; stops every background task
    store = keystore or open_keystore(config.keystore)
    cache = KeyCache(store, config.cache, generation, stop=stopping)
    if start_background_tasks:
        cache.start()
    metrics = Metrics(telemetry, started_monotonic)
    rt = app.extensions[EXTENSION] = Runtime(
        config=config,
        routes=configure_routes(config.api),
        policies=PolicySet.from_config(config),
        keys=cache,
        identify=identify,
        metrics=metrics,
        audit=AuditLog(
            config.log.audit,
            audit_hub,
            audit_stream,
            everything=config.log.audit_all,
            form=log_format,
        ),
        audit_hub=audit_hub,
        error_hub=error_hub,
        started=started or Timestamp.now(),
        started_monotonic=started_monotonic if started_monotonic is not None else time.monotonic(),
        stopping=stopping,
    )
    if start_background_tasks:
        threading.Thread(
            target=_publish_gauges, args=(metrics, rt.stopping), name="kes-gauges", daemon=True
        ).start()
    return app


GAUGE_INTERVAL = 5.0


def _publish_gauges(metrics: Metrics, stopping: threading.Event) -> None:
    """Keep this worker's share of the process-local gauges fresh for scrapes on other workers."""
    metrics.publish_gauges()
    while not stopping.wait(GAUGE_INTERVAL):
        metrics.publish_gauges()


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(KesError)
    def kes_error(err: KesError) -> Response:
        return error_response(err.status, err.message, err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        if isinstance(err, RequestRedirect):
            return redirect_response(err.new_url, err.code)
        if err.code is None or err.code < 400:
            return error_response(500, "internal server error")  # no other non-error is raised
        if isinstance(err, NotFound):
            return error_response(*NOT_FOUND)
        if isinstance(err, MethodNotAllowed):
            valid = set(err.valid_methods or ())
            expected = "PUT" if "PUT" in valid else "DELETE" if "DELETE" in valid else "GET"
            return error_response(
                405,
                f"received method '{request.method}' expected '{expected}'",
                {"Accept": expected},
            )
        return error_response(err.code, (err.description or err.name).strip())

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception) -> Response:
        log.exception("internal error while handling the request")
        return error_response(500, "internal server error")
