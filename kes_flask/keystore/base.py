"""The narrow interface every keystore backend implements (keystores.md §0.1).

A keystore stores opaque ASCII values (encoded key versions) under names. It knows nothing
about cryptography; the key cache and the API layer do the decoding.
"""

from __future__ import annotations

import sys
from typing import Protocol

LIST_PAGE_SIZE = 1024
UNLIMITED = sys.maxsize  # a listing limit meaning "every matching name"


class KeystoreError(Exception):
    """A backend failure. The API answers it with a route-specific 502 and logs the detail."""


class KeyNotFoundError(KeystoreError):
    pass


class KeyExistsError(KeystoreError):
    pass


class InvalidKeyNameError(KeystoreError):
    """The backend cannot store this name (e.g. ``_`` in Azure): the API answers 400."""


class KeystoreUnreachableError(KeystoreError):
    """The backend cannot be reached or is sealed: ``/v1/ready`` answers 504."""


class Keystore(Protocol):
    description: str  # banner label, e.g. "Filesystem: /var/lib/kes"

    def create(self, name: str, value: bytes) -> None:
        """Store ``value`` only if ``name`` does not exist yet (else ``KeyExistsError``)."""

    def get(self, name: str) -> bytes:
        """Return the stored bytes unchanged (or ``KeyNotFoundError``)."""

    def delete(self, name: str) -> None: ...

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        """Names starting with ``prefix``, sorted, and the first name not returned ("" if none)."""

    def status(self) -> float:
        """Probe the backend: the latency in seconds, or ``KeystoreUnreachableError``."""

    def close(self) -> None: ...


def paginate(names: list[str], prefix: str, limit: int) -> tuple[list[str], str]:
    """The shared listing rule (keystores.md §0.5): sort by bytes, filter, cut, continue-at."""
    matching = sorted((n for n in names if n.startswith(prefix)), key=lambda n: n.encode())
    size = limit if limit > 0 else LIST_PAGE_SIZE
    if len(matching) <= size:
        return matching, ""
    return matching[:size], matching[size]
