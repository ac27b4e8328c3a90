"""Everything a request handler needs, built once per worker process from the configuration.

This module sits below the API layer: it names the route table's type only for type checkers,
so importing it never imports ``kes_flask.api`` (``factory.py`` builds the table and hands it in).
It imports no Flask either: the worker's fast path uses it before the Flask app exists.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kes_flask.auth.peer import Identify
from kes_flask.auth.policy import PolicySet
from kes_flask.config.model import ServerConfig
from kes_flask.crypto import Timestamp
from kes_flask.keystore.cache import KeyCache
from kes_flask.telemetry.logs import AuditLog, LogHub
from kes_flask.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from kes_flask.api.routes import Route


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
