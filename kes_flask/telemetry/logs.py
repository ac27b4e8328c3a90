"""Error and audit logs: console output plus live fan-out to ``/v1/log/*`` subscribers.

Console lines use Go slog's text format (api.md §11.5) so log pipelines built for Go KES keep
parsing them. Only events that happen while a subscriber is connected reach it; there is no
history. A slow subscriber never blocks a request: its queue is bounded and events beyond it
are dropped for that subscriber.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from kes_flask.config.model import LEVEL_INFO

LOGGER_NAME = "kes_flask"
SUBSCRIBER_QUEUE_SIZE = 4096
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
    stamp = datetime.fromtimestamp(when or time.time(), timezone.utc)
    parts = [
        f"time={stamp.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
        f"level={level}",
        f"msg={_slog_value(message)}",
    ]
    parts.extend(f"{key}={_slog_value(value)}" for key, value in attrs.items())
    return " ".join(parts)


class Subscription:
    def __init__(self, hub: LogHub) -> None:
        self._hub = hub
        self._queue: queue.Queue[str] = queue.Queue(SUBSCRIBER_QUEUE_SIZE)

    def offer(self, line: str) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            pass

    def next(self, timeout: float) -> str | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)


class LogHub:
    """Fan-out of one event stream to any number of live subscribers."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def publish(self, line: str) -> None:
        if not self._subscribers:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(line)


class SlogFormatter(logging.Formatter):
    """Renders records as slog text; request attributes arrive in ``extra={"attrs": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message = f"{message}: {record.exc_info[1]}"
        level = logging.getLevelName(record.levelno)
        level = {"WARNING": "WARN", "CRITICAL": "ERROR"}.get(level, level)
        return slog_line(level, message, getattr(record, "attrs", {}), record.created)


class _HubHandler(logging.Handler):
    def __init__(self, hub: LogHub) -> None:
        super().__init__()
        self.hub = hub

    def emit(self, record: logging.LogRecord) -> None:
        if self.hub.active:
            self.hub.publish(json.dumps({"message": self.format(record)}))


def configure_error_log(level: int, hub: LogHub, stream: IO[str] | None = None) -> logging.Logger:
    """Route the ``kes_flask`` logger to stderr and the error hub at the configured level."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_TAG, False)]:
        logger.removeHandler(handler)
    formatter = SlogFormatter()
    console = logging.StreamHandler(stream or sys.stderr)
    hub_handler = _HubHandler(hub)
    for handler in (console, hub_handler):
        setattr(handler, _HANDLER_TAG, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(python_level(level))
    logger.propagate = False
    return logger


class AuditLog:
    """Audit events for key creation, import and deletion (api.md §11.1-§11.2)."""

    def __init__(
        self,
        level: int,
        hub: LogHub,
        stream: IO[str] | None = None,
    ) -> None:
        self.enabled = level <= LEVEL_INFO
        self.hub = hub
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
        attrs = {
            "req.method": method,
            "req.path": path,
            "req.ip": ip,
            "req.identity": identity or "<unknown>",
            "res.code": code,
            "res.time": f"{elapsed_ns / 1e6:.1f}ms",
        }
        line = slog_line("INFO", message, attrs, now)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        if self.hub.active:
            request: dict[str, str] = {"ip": ip} if ip else {}
            request["path"] = path
            if identity:
                request["identity"] = identity
            stamp = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")
            event = {
                "time": stamp,
                "request": request,
                "response": {"code": code, "time": elapsed_ns},
            }
            self.hub.publish(json.dumps(event, separators=(",", ":")))
