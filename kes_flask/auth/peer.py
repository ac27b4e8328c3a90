"""Who is calling: the identity of the TLS client certificate of the current connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# The API's answers when a verify route cannot identify the caller (api.md §2).
NO_CERTIFICATE = (400, "tls: client certificate is required")
NOT_TLS = (400, "insecure connection: TLS is required")


@dataclass(frozen=True)
class Peer:
    identity: str  # "" when the client sent no usable certificate
    error: tuple[int, str] | None = None  # why the identity is unknown, for verify routes


NO_TLS_PEER = Peer("", NOT_TLS)
ANONYMOUS_PEER = Peer("", NO_CERTIFICATE)

Identify = Callable[[Mapping[str, Any]], Peer]


def identify_gunicorn_peer(environ: Mapping[str, Any]) -> Peer:
    """Ask the connection's socket; the TLS layer computes the identity once per connection."""
    sock = environ.get("gunicorn.socket")
    kes_peer = getattr(sock, "kes_peer", None)
    return kes_peer() if kes_peer is not None else NO_TLS_PEER
