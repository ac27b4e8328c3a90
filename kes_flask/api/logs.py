"""``/v1/log/error`` and ``/v1/log/audit``: live NDJSON event streams (api.md §11.3).

A plain WSGI streaming response: each subscriber holds one worker thread for as long as it
stays connected and receives the events of every worker (``telemetry/streams.py``). The stream
ends when the client goes away (the socket turns readable: a close or reset, since clients
send nothing else while streaming), at once when the server shuts down, and ``DRAIN_SECONDS``
after its worker was retired by a reload or a restart — until then it keeps delivering the
events of the new workers too. It always ends with the chunked terminator, never mid-event.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from kes_flask.api.context import runtime
from kes_flask.api.responses import add_route
from kes_flask.runtime import Runtime
from kes_flask.telemetry.logs import LogHub

bp = Blueprint("logs", __name__)

POLL_INTERVAL = 0.5
DRAIN_SECONDS = 5.0  # below gunicorn's graceful timeout, so the stream ends before a SIGKILL


def _client_gone(sock: Any) -> bool:
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _stream(rt: Runtime, hub: LogHub, kind: str, sock: Any) -> Iterator[bytes]:
    subscription = hub.subscribe()
    shared = rt.metrics.shared
    try:
        yield b""  # send the status line and headers now, not with the first event
        deadline = None
        while True:
            if rt.stopping.is_set():
                if shared.shutting_down:
                    return
                if deadline is None:
                    deadline = time.monotonic() + DRAIN_SECONDS
                elif time.monotonic() >= deadline:
                    return
            line = subscription.next(POLL_INTERVAL)
            if line is not None:
                rt.metrics.log_event_written(kind)
                yield line.encode() + b"\n"
            elif _client_gone(sock):
                return
    finally:
        subscription.close()


def _respond(hub: LogHub, kind: str) -> Response:
    rt = runtime()
    sock = request.environ.get("gunicorn.socket")
    return Response(
        _stream(rt, hub, kind, sock),
        status=200,
        mimetype="application/x-ndjson",
        direct_passthrough=True,
    )


def error() -> Response:
    return _respond(runtime().error_hub, "error")


def audit() -> Response:
    return _respond(runtime().audit_hub, "audit")


for _view in (error, audit):
    add_route(bp, _view)
