"""The gunicorn worker: gthread, with KES's error shape for requests gunicorn itself rejects."""

from __future__ import annotations

import json
import logging

from gunicorn import util
from gunicorn.http.errors import (
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
)
from gunicorn.workers.gthread import ThreadWorker

from kes_flask.runtime import EXTENSION
from kes_flask.server import hardening

log = logging.getLogger("kes_flask.server")


def protocol_error_response(exc: Exception) -> tuple[int, str, str]:
    """Status, reason and message for a request gunicorn could not parse: always a 4xx."""
    if isinstance(exc, LimitRequestLine):
        return 414, "URI Too Long", "request line too long"
    if isinstance(exc, LimitRequestHeaders):
        return 431, "Request Header Fields Too Large", "request headers too large"
    return 400, "Bad Request", f"malformed HTTP request: {exc}"


class KesWorker(ThreadWorker):
    """gthread that locks memory when asked, stops log streams on shutdown, and answers
    malformed requests with a KES-style JSON error instead of gunicorn's HTML page."""

    def init_process(self) -> None:
        # Memory locks are not inherited across fork(): every worker locks its own.
        hardening.disable_core_dumps()
        hardening.apply_memory_lock(getattr(self.cfg, "kes_mlock", hardening.MemoryLock.OFF))
        super().init_process()

    def _stop_streams(self) -> None:
        runtime = getattr(getattr(self, "wsgi", None), "extensions", {}).get(EXTENSION)
        if runtime is not None:
            runtime.stopping.set()

    def handle_exit(self, sig: int, frame: object) -> None:
        self._stop_streams()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: object) -> None:
        self._stop_streams()  # SIGINT/SIGQUIT: a quick shutdown must not wait for streams
        super().handle_quit(sig, frame)

    def handle_error(self, req, client, addr, exc) -> None:
        is_app_error = isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName)
        if is_app_error or not isinstance(exc, ParseException):
            super().handle_error(req, client, addr, exc)  # a server-side failure: gunicorn's 500
            return
        status, reason, message = protocol_error_response(exc)
        ip = addr[0] if addr else ""
        self.log.warning("Invalid request from ip=%s: %s", ip, exc)
        body = json.dumps({"message": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            util.write_nonblock(client, head + body)
        except Exception:  # noqa: BLE001 - the client may already be gone
            self.log.debug("Failed to send error message.")
