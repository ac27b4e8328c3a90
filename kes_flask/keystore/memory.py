"""Volatile in-memory keystore (keystores.md §10) for tests and single-process development."""

from __future__ import annotations

import threading

from kes_flask.keystore.base import UNLIMITED, KeyExistsError, KeyNotFoundError, paginate


class MemoryKeystore:
    description = "In Memory"

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def create(self, name: str, value: bytes) -> None:
        with self._lock:
            if name in self._values:
                raise KeyExistsError(name)
            self._values[name] = bytes(value)

    def get(self, name: str) -> bytes:
        try:
            return self._values[name]
        except KeyError:
            raise KeyNotFoundError(name) from None

    def delete(self, name: str) -> None:
        with self._lock:
            if self._values.pop(name, None) is None:
                raise KeyNotFoundError(name)

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        with self._lock:
            names = list(self._values)
        if limit == 0:
            return [], ""
        return paginate(names, prefix, limit if limit > 0 else UNLIMITED)  # never paged

    def status(self) -> float:
        return 0.001

    def close(self) -> None:
        pass
