"""Typed results of the SDK, decoded from the server's JSON (api.md §5, §10, §11).

Each ``from_json`` accepts what Go KES and kes-flask send, including the optional fields they omit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)
_FRACTION = re.compile(r"(\.\d+)")


def parse_time(text: str | None) -> datetime:
    """RFC 3339 with up to nanoseconds (Go writes 9 digits; Python keeps 6)."""
    if not text:
        return ZERO_TIME
    text = text.replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class DEK:
    """A data encryption key: use ``plaintext``, store ``ciphertext`` next to the data."""

    plaintext: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class KeyInfo:
    name: str
    algorithm: str  # AES256 or ChaCha20
    created_at: datetime
    created_by: str = ""

    @classmethod
    def from_json(cls, name: str, body: dict[str, Any]) -> KeyInfo:
        return cls(
            name=body.get("name") or name,
            algorithm=body.get("algorithm") or "AES256",
            created_at=parse_time(body.get("created_at")),
            created_by=body.get("created_by", ""),
        )


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    created_at: datetime
    created_by: str = ""

    @classmethod
    def from_json(cls, name: str, body: dict[str, Any]) -> PolicyInfo:
        return cls(name, parse_time(body.get("created_at")), body.get("created_by", ""))


@dataclass(frozen=True)
class Policy:
    """A policy's rules: the paths it allows and denies (deny wins)."""

    name: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    created_at: datetime = ZERO_TIME
    created_by: str = ""

    @classmethod
    def from_json(cls, name: str, body: dict[str, Any]) -> Policy:
        return cls(
            name=body.get("name") or name,
            allow=tuple(sorted(body.get("allow") or {})),
            deny=tuple(sorted(body.get("deny") or {})),
            created_at=parse_time(body.get("created_at")),
            created_by=body.get("created_by", ""),
        )


@dataclass(frozen=True)
class IdentityInfo:
    identity: str
    admin: bool = False
    policy: str = ""
    created_at: datetime = ZERO_TIME
    created_by: str = ""

    @classmethod
    def from_json(cls, identity: str, body: dict[str, Any]) -> IdentityInfo:
        return cls(
            identity=body.get("identity") or identity,
            admin=bool(body.get("admin", False)),
            policy=body.get("policy") or "",
            created_at=parse_time(body.get("created_at")),
            created_by=body.get("created_by", ""),
        )


@dataclass(frozen=True)
class SelfInfo(IdentityInfo):
    """The caller's own identity, with its policy's rules (empty for the admin)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, identity: str, body: dict[str, Any]) -> SelfInfo:
        base = IdentityInfo.from_json(identity, body)
        return cls(
            **vars(base),
            allow=tuple(sorted(body.get("allow") or {})),
            deny=tuple(sorted(body.get("deny") or {})),
        )


@dataclass(frozen=True)
class Status:
    """``/v1/status``; ``latency`` is the client's own round trip."""

    version: str
    os: str = ""
    arch: str = ""
    uptime: timedelta = timedelta(0)
    num_cpu: int = 0
    num_cpu_used: int = 0
    mem_heap_used: int = 0
    mem_stack_used: int = 0
    keystore_latency: int = 0  # whole milliseconds, as the server sends it
    keystore_unreachable: bool = False
    keystore_unavailable: bool = False
    latency: timedelta = timedelta(0)
    endpoint: str = ""

    @classmethod
    def from_json(cls, body: dict[str, Any], latency: timedelta, endpoint: str) -> Status:
        return cls(
            version=body.get("version", ""),
            os=body.get("os", ""),
            arch=body.get("arch", ""),
            uptime=timedelta(seconds=float(body.get("uptime", 0))),
            num_cpu=int(body.get("num_cpu", 0)),
            num_cpu_used=int(body.get("num_cpu_used", 0)),
            mem_heap_used=int(body.get("mem_heap_used", 0)),
            mem_stack_used=int(body.get("mem_stack_used", 0)),
            keystore_latency=int(body.get("keystore_latency", 0)),
            keystore_unreachable=bool(body.get("keystore_unreachable", False)),
            keystore_unavailable=bool(body.get("keystore_unavailable", False)),
            latency=latency,
            endpoint=endpoint,
        )


@dataclass(frozen=True)
class API:
    method: str
    path: str
    max_body: int = 0
    timeout: timedelta = timedelta(0)  # 0: none

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> API:
        return cls(
            body.get("method", ""),
            body.get("path", ""),
            int(body.get("max_body", 0)),
            timedelta(seconds=int(body.get("timeout", 0))),
        )


@dataclass(frozen=True)
class Metrics:
    """The figures kms-go reads from ``/v1/metrics`` (api.md §10.3); times as timedelta."""

    request_ok: int = 0
    request_err: int = 0
    request_fail: int = 0
    request_active: int = 0
    audit_events: int = 0
    error_events: int = 0
    latency_histogram: dict[timedelta, int] = field(default_factory=dict)  # upper bound → count
    up_time: timedelta = timedelta(0)
    cpus: int = 0
    used_cpus: int = 0
    threads: int = 0
    heap_alloc: int = 0
    heap_objects: int = 0
    stack_alloc: int = 0

    @property
    def request_n(self) -> int:
        return self.request_ok + self.request_err + self.request_fail


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    path: str
    identity: str = ""
    ip: str = ""
    status: int = 0
    response_time: timedelta = timedelta(0)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> AuditEvent:
        request, response = body.get("request") or {}, body.get("response") or {}
        return cls(
            time=parse_time(body.get("time")),
            path=request.get("path", ""),
            identity=request.get("identity", ""),
            ip=request.get("ip", ""),
            status=int(response.get("code", 0)),
            response_time=timedelta(microseconds=int(response.get("time", 0)) / 1000),
        )


@dataclass(frozen=True)
class ErrorEvent:
    message: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ErrorEvent:
        return cls(str(body.get("message", "")))
