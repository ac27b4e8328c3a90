"""Decoded keys cached in front of a keystore (keystores.md §1).

Every worker process has its own cache. A delete in one worker bumps a counter in memory shared
by all workers (created by the gunicorn master before it forks), and every cache flushes itself
when it sees the counter move, so no worker keeps serving a key another worker deleted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from kes_flask.config.model import SECOND, CacheConfig
from kes_flask.crypto import KeyFormatError, KeyVersion
from kes_flask.keystore.base import Keystore, KeystoreError, KeystoreUnreachableError

PROBE_INTERVAL = 10.0

log = logging.getLogger("kes_flask.keystore")


@contextlib.contextmanager
def _backend_errors(operation: str, name: str) -> Iterator[None]:
    """Any backend failure that is not a ``KeystoreError`` yet (an ``OSError`` a backend let
    through, a client library's exception) becomes one, so every route answers its 502."""
    try:
        yield
    except KeystoreError:
        raise
    except Exception as err:  # noqa: BLE001 - the API layer turns this into the route's 502
        target = f" '{name}'" if name else ""
        reason = f"{type(err).__name__}: {err}"
        raise KeystoreError(f"keystore {operation}{target} failed: {reason}") from None


class Counter(Protocol):
    value: int


class SharedGeneration:
    """A change counter in shared memory; create it before forking workers."""

    def __init__(self) -> None:
        import multiprocessing

        self._value = multiprocessing.RawValue("Q", 0)
        self._lock = multiprocessing.Lock()

    @property
    def value(self) -> int:
        return self._value.value

    def bump(self) -> None:
        with self._lock:
            self._value.value += 1


class LocalGeneration:
    """The single-process stand-in for ``SharedGeneration``."""

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


@dataclass
class _Entry:
    version: KeyVersion
    used: bool = True


class KeyCache:
    def __init__(
        self,
        store: Keystore,
        expiry: CacheConfig,
        generation: SharedGeneration | LocalGeneration | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.expiry = expiry
        self._generation = generation or LocalGeneration()
        self._seen = self._generation.value
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, list] = {}
        self._locks_guard = threading.Lock()
        self.offline = False
        self._stop = stop or threading.Event()  # set: the ticker ends and closes the store
        self._thread: threading.Thread | None = None

    # --- key operations ----------------------------------------------------------------

    def get(self, name: str) -> KeyVersion:
        version = self.cached(name)
        return version if version is not None else self._load(name)

    def cached(self, name: str) -> KeyVersion | None:
        """The cached key, or None; never calls the keystore, never takes a lock."""
        if self._generation.value != self._seen:
            self._seen = self._generation.value
            self._entries = {}
        entry = self._entries.get(name)
        if entry is None:
            return None
        entry.used = True
        return entry.version

    def _load(self, name: str) -> KeyVersion:
        with self._name_lock(name):  # concurrent misses for one name cause one backend call
            entry = self._entries.get(name)
            if entry is not None:
                entry.used = True
                return entry.version
            with _backend_errors("read", name):
                value = self.store.get(name)
            try:
                version = KeyVersion.parse(value)
            except KeyFormatError as err:
                raise KeystoreError(f"key '{name}' has an invalid stored value: {err}") from None
            self._entries[name] = _Entry(version)
            return version

    def create(self, name: str, version: KeyVersion) -> None:
        with _backend_errors("create", name):
            self.store.create(name, version.encode())

    def delete(self, name: str) -> None:
        with _backend_errors("delete", name):
            self.store.delete(name)
        self._entries.pop(name, None)
        self._generation.bump()

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        with _backend_errors("list", prefix):
            return self.store.list(prefix, limit)

    def status(self) -> float:
        """Offline (the last probe failed) until the next probe succeeds, like Go KES."""
        if self.offline:
            raise KeystoreUnreachableError("kes: keystore unreachable: keystore is offline")
        with _backend_errors("probe", ""):
            return self.store.status()

    @contextlib.contextmanager
    def _name_lock(self, name: str) -> Iterator[None]:
        with self._locks_guard:
            slot = self._locks.get(name)
            if slot is None:
                slot = self._locks[name] = [threading.Lock(), 0]
            slot[1] += 1
        try:
            with slot[0]:
                yield
        finally:
            with self._locks_guard:
                slot[1] -= 1
                if slot[1] == 0:
                    del self._locks[name]

    # --- expiry (keystores.md §1.3) ------------------------------------------------------

    def start(self) -> None:
        """Start the expiry and probe ticker and the store's own background tasks (Vault
        token renewal); call it in the process that serves requests, never before a fork."""
        if self._thread is None:
            start_store = getattr(self.store, "start", None)
            if callable(start_store):
                start_store()
            self._thread = threading.Thread(target=self._tick, name="kes-key-cache", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.store.close()

    def _tasks(self) -> list[tuple[float, Callable[[], None]]]:
        tasks = [
            (self.expiry.any / SECOND, self.expire_all),
            (self.expiry.unused / SECOND / 2, self.expire_unused),
            (self.expiry.offline / SECOND, self.expire_offline),
            (PROBE_INTERVAL, self.probe),
        ]
        return [(interval, task) for interval, task in tasks if interval > 0]

    def _tick(self) -> None:
        tasks = self._tasks()
        due = [self._clock() + interval for interval, _ in tasks]
        while not self._stop.wait(max(0.0, min(due) - self._clock())):
            now = self._clock()
            for index, (interval, task) in enumerate(tasks):
                if due[index] <= now:
                    due[index] = now + interval
                    try:
                        task()
                    except Exception:  # a failing task must not stop expiry
                        log.exception("key cache task failed")
        self.store.close()  # the worker is stopping: end the store's background tasks too

    def _keep_while_offline(self) -> bool:
        return self.offline and self.expiry.offline > 0

    def expire_all(self) -> None:
        if not self._keep_while_offline():
            self._entries = {}

    def expire_unused(self) -> None:
        """Second chance: drop entries unused since the last tick, mark the rest unused."""
        if self._keep_while_offline():
            return
        entries = self._entries
        for name, entry in list(entries.items()):
            if entry.used:
                entry.used = False
            else:
                entries.pop(name, None)

    def expire_offline(self) -> None:
        if self._keep_while_offline():
            self._entries = {}

    def probe(self) -> None:
        try:
            self.store.status()
        except Exception as err:  # noqa: BLE001 - any failure marks the store offline
            if not self.offline:
                log.warning("keystore is offline: %s", err)
            self.offline = True
        else:
            if self.offline:
                log.info("keystore is reachable again")
            self.offline = False
