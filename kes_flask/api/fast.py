"""The hot routes' success path without Flask: generate, encrypt, decrypt and status.

MinIO asks for one data key per PUT and one decrypt per GET, so these three routes are most of
a KES server's work. This module answers them directly from the parsed request when nothing is
unusual — a clean path, a valid name, an authorized identity, a well-formed body and a key that
is cached — with the same bytes the Flask views produce. Anything else returns ``None`` and the
request goes through the full Flask pipeline, which owns every error, log line and redirect;
falling back is always safe because these routes change nothing before they answer.

Identity comes from the caller (the connection knows its peer), and authorization decisions are
cached per connection by policy path; the configuration a worker serves never changes (a reload
replaces the workers).
"""

from __future__ import annotations

import secrets
import time
from base64 import b64encode
from collections.abc import Callable
from typing import Any

from kes_flask.api.body import bytes_field, decode_object, json_body, string_field
from kes_flask.api.routes import Auth, Route
from kes_flask.api.status import status_info
from kes_flask.auth.names import valid_name
from kes_flask.auth.peer import Peer
from kes_flask.crypto import KeyVersion
from kes_flask.runtime import Runtime

KEY_SIZE = 32
AUTHZ_CACHE_SIZE = 256

# What the caller must do instead of using an answer.
FALLBACK = None  # run the request through Flask
BLOCKING = "blocking"  # the key is not cached: answer it on a thread that may wait
STATUS = "/v1/status"
# A healthy status answer is reused for this long: its keystore probe (for FS a file write) and
# memory figures cost more than the rest of the request. A failure is never reused, so a
# recovering keystore shows at once; a new failure shows within this time.
STATUS_TTL = 1.0


class FastPath:
    """Per-worker table of the hot routes, built from the worker's runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._status: tuple[float, dict[str, object]] | None = None  # (when, healthy answer)
        table = {route.endpoint: route for route in self.rt.routes.values()}
        self._routes: dict[str, tuple[Route, Callable]] = {}
        if self.rt.audit.everything:
            return  # ``log.audit: all`` audits these requests: Flask answers them all
        for endpoint, handler in (
            ("keys.generate", self._generate),
            ("keys.encrypt", self._encrypt),
            ("keys.decrypt", self._decrypt),
        ):
            route = table[endpoint]
            self._routes[route.path] = (route, handler)
        self._routes[STATUS] = (table["system.status"], self._generate)  # handler unused

    def prefix_of(self, path: str) -> str | None:
        """The hot route prefix ``path`` falls under, or None; cheap enough for every request."""
        if not path.startswith("/v1/key/"):
            return STATUS if path == STATUS and STATUS in self._routes else None
        cut = path.find("/", 8)
        prefix = path[: cut + 1] if cut > 0 else ""
        return prefix if prefix in self._routes else None

    def answer(
        self,
        prefix: str,
        method: str,
        path: str,
        body: bytes,
        declared_empty: bool,
        peer: Callable[[], Peer],
        authz: dict[str, bool],
        may_block: bool,
    ) -> bytes | str | None:
        """The JSON body of a 200 answer, ``BLOCKING``, or ``FALLBACK`` (None)."""
        route, handler = self._routes[prefix]
        if prefix == STATUS:
            if method != "GET" or not self._allowed(route, path, peer, authz):
                return FALLBACK
            return self._status_answer(may_block)
        if method != "POST" and method != "PUT":
            return FALLBACK
        name = path[len(prefix) :]
        if not valid_name(name):  # also rules out "%", "/", "." and ".." segments
            return FALLBACK
        if not self._allowed(route, path, peer, authz):
            return FALLBACK
        started = time.perf_counter()
        if len(body) > route.max_body:
            return FALLBACK
        keys = self.rt.keys
        version = keys.cached(name)
        if version is None:
            if not may_block:
                return BLOCKING
            try:
                version = keys.get(name)
            except Exception:  # noqa: BLE001 - Flask answers every key lookup failure
                return FALLBACK
        try:
            if declared_empty and prefix == "/v1/key/generate/":
                fields: dict[str, Any] = {}
            else:
                fields = decode_object(body)
                string_field(fields, "version")
            payload = handler(version, fields)
        except Exception:  # noqa: BLE001 - bad input and crypto failures: Flask answers them
            return FALLBACK
        if route.counted:
            metrics = self.rt.metrics
            metrics.request_started()
            metrics.request_finished(200, time.perf_counter() - started)
        return payload

    def _status_answer(self, may_block: bool) -> bytes | str:
        now = time.monotonic()
        cached = self._status
        if cached is None or now - cached[0] >= STATUS_TTL:
            if not may_block:  # the keystore probe may wait (a remote service, a disk write)
                return BLOCKING
            info = status_info(self.rt)
            if "keystore_latency" in info:
                self._status = (now, info)
            return json_body(info).encode()
        info = dict(cached[1])
        info["uptime"] = round(now - self.rt.started_monotonic)
        return json_body(info).encode()

    def _allowed(
        self, route: Route, path: str, peer: Callable[[], Peer], authz: dict[str, bool]
    ) -> bool:
        """The pipeline's decision for a clean path, cached per connection by path."""
        if route.auth is Auth.IDENTIFY:
            return True
        if route.auth is not Auth.VERIFY:
            return False
        allowed = authz.get(path)
        if allowed is None:
            who = peer()
            allowed = who.error is None and self.rt.policies.authorize(who.identity, path)
            if len(authz) >= AUTHZ_CACHE_SIZE:
                authz.clear()
            authz[path] = allowed
        return allowed

    @staticmethod
    def _generate(version: KeyVersion, fields: dict[str, Any]) -> bytes:
        context = bytes_field(fields, "context")
        plaintext = secrets.token_bytes(KEY_SIZE)
        ciphertext = version.secret_key.encrypt(plaintext, context)
        return b'{"plaintext":"%s","ciphertext":"%s"}\n' % (
            b64encode(plaintext),
            b64encode(ciphertext),
        )

    @staticmethod
    def _encrypt(version: KeyVersion, fields: dict[str, Any]) -> bytes:
        plaintext = bytes_field(fields, "plaintext")
        context = bytes_field(fields, "context")
        return b'{"ciphertext":"%s"}\n' % b64encode(version.secret_key.encrypt(plaintext, context))

    @staticmethod
    def _decrypt(version: KeyVersion, fields: dict[str, Any]) -> bytes:
        ciphertext = bytes_field(fields, "ciphertext")
        context = bytes_field(fields, "context")
        return b'{"plaintext":"%s"}\n' % b64encode(version.secret_key.decrypt(ciphertext, context))
