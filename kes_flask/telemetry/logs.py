"""Error and audit logs: console output plus live fan-out to ``/v1/log/*`` subscribers.

Console lines use Go slog's text format (api.md §11.5) so log pipelines built for Go KES keep
parsing them, or one JSON object per line (``--log-format json``). Stream events always carry
the text form. Only events that happen while a subscriber is connected reach it; there is no
history. Delivery across workers and the bounds that keep a slow subscriber from ever blocking
a request live in ``streams.py``. Every line logged while a request is handled carries its
request id (``req.id``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any

from kes_flask.config.model import LEVEL_INFO
from kes_flask.telemetry.streams import AUDIT, ERROR, LogStreams, Subscription

LOGGER_NAME = "kes_flask"
FORMATS = ("text", "json")

# The id of the request this thread (or task) is handling; "" outside requests.
REQUEST_ID: ContextVar[str] = ContextVar("kes_flask_request_id", default="")
_HANDLER_TAG = "_kes_flask_handler"


def python_level(slog_level: int) -> int:
    """Map slog levels (DEBUG -4, INFO 0, WARN 4, ERROR 8) onto ``logging``'s 10/20/30/40."""
    return 20 + round(slog_level * 2.5)


def slog_level_name(slog_level: int) -> str:
    for base, name in ((8, "ERROR"), (4, "WARN"), (0, "INFO"), (-4, "DEBUG")):
        if slog_level >= base:
            return name if slog_level == base else f"{name}+{slog_level - base}"
    return f"DEBUG{slog_level + 4}"


def _slog_value(value: Any) -> str:
    text = str(value)
    if text and all(c.isprintable() and c not in ' "=' for c in text):
        return text
    return json.dumps(text)


def slog_line(level: str, message: str, attrs: Mapping[str, Any], when: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    parts = [
        f"time={stamp.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
        f"level={level}",
        f"msg={_slog_value(message)}",
    ]
    parts.extend(f"{key}={_slog_value(value)}" for key, value in attrs.items())
    return " ".join(parts)


def json_line(level: str, message: str, attrs: Mapping[str, Any], when: float | None = None) -> str:
    """The same record as one JSON object (Go slog's JSONHandler field names)."""
    stamp = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    record = {
        "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "msg": message,
    }
    record.update(attrs)
    return json.dumps(record, separators=(",", ":"), default=str)


def console_line(
    form: str, level: str, message: str, attrs: Mapping[str, Any], when: float | None = None
) -> str:
    return (json_line if form == "json" else slog_line)(level, message, attrs, when)


class LogHub:
    """One stream (audit or error) of the server-wide ``LogStreams``."""

    def __init__(self, streams: LogStreams, kind: int) -> None:
        self.streams = streams
        self.kind = kind

    def subscribe(self) -> Subscription:
        return self.streams.subscribe(self.kind)

    @property
    def active(self) -> bool:
        return self.streams.active(self.kind)

    def publish(self, line: str) -> None:
        if self.active:
            self.streams.publish(self.kind, line)


def hubs(streams: LogStreams) -> tuple[LogHub, LogHub]:
    """The (error, audit) hubs."""
    return LogHub(streams, ERROR), LogHub(streams, AUDIT)


class SlogFormatter(logging.Formatter):
    """Renders records as slog text (or JSON); request attributes arrive in
    ``extra={"attrs": {...}}``, the current request's id is added as ``req.id``."""

    def __init__(self, form: str = "text") -> None:
        super().__init__()
        self.form = form

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message = f"{message}: {record.exc_info[1]}"
        level = logging.getLevelName(record.levelno)
        level = {"WARNING": "WARN", "CRITICAL": "ERROR"}.get(level, level)
        attrs = getattr(record, "attrs", {})
        request_id = REQUEST_ID.get()
        if request_id and "req.id" not in attrs:
            attrs = {**attrs, "req.id": request_id}
        return console_line(self.form, level, message, attrs, record.created)


class _HubHandler(logging.Handler):
    def __init__(self, hub: LogHub) -> None:
        super().__init__()
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        if self.hub.active:
            self.hub.publish(json.dumps({"message": self.format(record)}))


def configure_error_log(
    level: int, hub: LogHub | None, stream: IO[str] | None = None, form: str = "text"
) -> logging.Logger:
    """Route the ``kes_flask`` logger to stderr (and the error hub) at the configured level."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_TAG, False)]:
        logger.removeHandler(handler)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(SlogFormatter(form))
    handlers: list[logging.Handler] = [console]
    if hub is not None:
        hub_handler = _HubHandler(hub)
        hub_handler.setFormatter(SlogFormatter())  # stream events are always slog text
        handlers.append(hub_handler)
    for handler in handlers:
        setattr(handler, _HANDLER_TAG, True)
        logger.addHandler(handler)
    logger.setLevel(python_level(level))
    logger.propagate = False
    return logger


class AuditLog:
    """Audit events (api.md §11.1-§11.2): key creation, import and deletion, as Go KES; with
    ``log.audit: all`` also every other use of a key and every denied request."""

    def __init__(
        self,
        level: int,
        hub: LogHub,
        stream: IO[str] | None = None,
        *,
        everything: bool = False,
        form: str = "text",
    ) -> None:
        self.enabled = level <= LEVEL_INFO
        self.everything = self.enabled and everything
        self.hub = hub
        self.form = form
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def record(
        self,
        message: str,
        *,
        method: str,
        path: str,
        ip: str,
        identity: str,
        code: int,
        elapsed_ns: int,
    ) -> None:
        if not self.enabled:
            return
        now = time.time()
        request_id = REQUEST_ID.get()
        attrs = {
            "req.method": method,
            "req.path": path,
            "req.ip": ip,
            "req.identity": identity or "<unknown>",
            "req.id": request_id,
            "res.code": code,
            "res.time": f"{elapsed_ns / 1e6:.1f}ms",
        }
        if not request_id:
            del attrs["req.id"]
        line = console_line(self.form, "INFO", message, attrs, now)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        if self.hub.active:
            request: dict[str, str] = {"ip": ip} if ip else {}
            request["path"] = path
            if identity:
                request["identity"] = identity
            if request_id:
                request["id"] = request_id  # an extra field: Go clients ignore it
            stamp = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")
            event = {
                "time": stamp,
                "request": request,
                "response": {"code": code, "time": elapsed_ns},
            }
            self.hub.publish(json.dumps(event, separators=(",", ":")))
