"""A worker's runtime, built from a validated config without importing Flask.

The worker answers the hot routes and status from this runtime (``api/fast.py``) while the
Flask app (``app.py``, which wraps the same runtime) is still loading: importing Flask and
building the app is most of a worker's start-up, and none of it is needed for the first answer.
"""

from __future__ import annotations

import threading
import time
from typing import IO

from kes_flask.api.routes import configure_routes
from kes_flask.auth.peer import Identify, identify_gunicorn_peer
from kes_flask.auth.policy import PolicySet
from kes_flask.config.model import ServerConfig
from kes_flask.crypto import Timestamp
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import Keystore
from kes_flask.keystore.cache import KeyCache, LocalGeneration, SharedGeneration
from kes_flask.runtime import Runtime
from kes_flask.telemetry.logs import AuditLog, configure_error_log, hubs
from kes_flask.telemetry.metrics import Metrics
from kes_flask.telemetry.shared import SharedTelemetry
from kes_flask.telemetry.streams import LogStreams

GAUGE_INTERVAL = 5.0


def build_runtime(
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
) -> Runtime:
    """Everything a request needs. ``started`` is the server's start (kept across worker
    restarts); ``telemetry`` is the memory the gunicorn master shares with its workers (bound
    to this worker's slot), or None for a single process."""
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
    rt = Runtime(
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
    return rt


def _publish_gauges(metrics: Metrics, stopping: threading.Event) -> None:
    """Keep this worker's share of the process-local gauges fresh for scrapes on other workers."""
    metrics.publish_gauges()
    while not stopping.wait(GAUGE_INTERVAL):
        metrics.publish_gauges()
