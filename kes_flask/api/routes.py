"""The 22 routes of the KES API (api.md §4) and their per-route settings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from kes_flask.config.model import SECOND, APIOverride

MB = 1_000_000  # aead.dev/mem's decimal megabyte


class Auth(Enum):
    NONE = "none"  # no identity at all (/version)
    IDENTIFY = "identify"  # identity if a certificate is present, no policy check
    VERIFY = "verify"  # admin or an allowing policy


@dataclass(frozen=True)
class Route:
    method: str  # GET, PUT or DELETE; PUT routes also accept POST
    path: str  # resource routes end with "/"
    endpoint: str
    max_body: int = 0
    timeout: int = 15 * SECOND  # nanoseconds; 0 = none
    auth: Auth = Auth.VERIFY
    counted: bool = True  # included in the kes_http_request_* metrics

    @property
    def has_resource(self) -> bool:
        return self.path.endswith("/")

    def accepts(self, method: str) -> bool:
        return method == self.method or (method == "POST" and self.method == "PUT")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/version", "system.version", timeout=10 * SECOND, auth=Auth.NONE, counted=False),
    Route("GET", "/v1/ready", "system.ready", counted=False),
    Route("GET", "/v1/status", "system.status", counted=False),
    Route("GET", "/v1/metrics", "system.metrics", counted=False),
    Route("GET", "/v1/api", "system.api", timeout=10 * SECOND, counted=False),
    Route("PUT", "/v1/key/create/", "keys.create"),
    Route("PUT", "/v1/key/import/", "keys.import_key", max_body=MB),
    Route("GET", "/v1/key/describe/", "keys.describe"),
    Route("DELETE", "/v1/key/delete/", "keys.delete"),
    Route("GET", "/v1/key/list/", "keys.list_keys"),
    Route("PUT", "/v1/key/generate/", "keys.generate", max_body=MB),
    Route("PUT", "/v1/key/encrypt/", "keys.encrypt", max_body=MB),
    Route("PUT", "/v1/key/decrypt/", "keys.decrypt", max_body=MB),
    Route("PUT", "/v1/key/hmac/", "keys.hmac", max_body=MB),
    Route("GET", "/v1/policy/describe/", "policy.describe"),
    Route("GET", "/v1/policy/read/", "policy.read"),
    Route("GET", "/v1/policy/list/", "policy.list_policies"),
    Route("GET", "/v1/identity/describe/", "identity.describe"),
    Route("GET", "/v1/identity/list/", "identity.list_identities"),
    Route("GET", "/v1/identity/self/describe", "identity.self_describe", auth=Auth.IDENTIFY),
    Route("GET", "/v1/log/error", "logs.error", timeout=0, counted=False),
    Route("GET", "/v1/log/audit", "logs.audit", timeout=0, counted=False),
)


def configure_routes(overrides: dict[str, APIOverride]) -> dict[str, Route]:
    """Apply ``api.<path>`` settings; unknown paths change no route (config.md §4.7)."""
    table = {}
    for route in ROUTES:
        override = overrides.get(route.path)
        if override is not None:
            if override.timeout:
                route = replace(route, timeout=override.timeout)
            if override.skip_auth and route.auth is Auth.VERIFY:
                route = replace(route, auth=Auth.IDENTIFY)
        table[route.endpoint] = route
    return table
