"""Everything a request handler needs, built once per worker process from the configuration."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from kes_flask.api.routes import Route
from kes_flask.auth.peer import Identify
from kes_flask.auth.policy import PolicySet
from kes_flask.config.model import ServerConfig
from kes_flask.crypto import Timestamp
from kes_flask.keystore.cache import KeyCache
from kes_flask.telemetry.logs import AuditLog, LogHub
from kes_flask.telemetry.metrics import Metrics


@dataclass
class Runtime:
    config: ServerConfig
    routes: dict[str, Route]  # by Flask endpoint
    policies: PolicySet
    keys: KeyCache
    identify: Identify
    metrics: Metrics
    audit: AuditLog
    audit_hub: LogHub
    error_hub: LogHub
    started: Timestamp  # server start (wall clock), reported as policy/identity creation time
    started_monotonic: float
    stopping: threading.Event = field(default_factory=threading.Event)


EXTENSION = "kes_flask"


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]
