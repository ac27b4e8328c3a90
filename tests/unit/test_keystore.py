"""FS and in-memory keystores, and the key cache in front of them (keystores.md §0-§2, §10)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from kes_flask.config.model import SECOND, CacheConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import fs as fs_module
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)
from kes_flask.keystore.cache import KeyCache, SharedGeneration
from kes_flask.keystore.fs import FSKeystore
from kes_flask.keystore.memory import MemoryKeystore
from tests.kes_server import eventually


@pytest.fixture(params=["fs", "memory"])
def store(request, tmp_path: Path):
    return FSKeystore(str(tmp_path / "keys")) if request.param == "fs" else MemoryKeystore()


def test_create_get_delete(store):
    store.create("k", b"value")
    assert store.get("k") == b"value"
    with pytest.raises(KeyExistsError):
        store.create("k", b"other")
    assert store.get("k") == b"value"
    store.delete("k")
    with pytest.raises(KeyNotFoundError):
        store.get("k")
    with pytest.raises(KeyNotFoundError):
        store.delete("k")


def test_listing_is_sorted_by_bytes_and_filtered(store):
    for name in ("b", "a-2", "a-1", "B"):
        store.create(name, b"v")
    assert store.list("") == (["B", "a-1", "a-2", "b"], "")
    assert store.list("a-") == (["a-1", "a-2"], "")


def test_paginate_cuts_at_1024_and_names_the_next():
    names = [f"k{i:05d}" for i in range(1500)]
    page, next_name = paginate(names, "", -1)
    assert len(page) == 1024 and next_name == "k01024"
    assert paginate(names, "k0149", 5) == (
        ["k01490", "k01491", "k01492", "k01493", "k01494"],
        "k01495",
    )


def test_fs_files_are_go_compatible(tmp_path: Path):
    store = FSKeystore(str(tmp_path / "a" / "b"))  # parents are created
    store.create("my-key", b"CiQKvalue")
    path = tmp_path / "a" / "b" / "my-key"
    assert path.read_bytes() == b"CiQKvalue"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["my-key"]


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", "a.b", ".."])
def test_fs_rejects_names_it_cannot_store(tmp_path: Path, name: str):
    store = FSKeystore(str(tmp_path))
    for operation in (
        lambda: store.create(name, b"v"),
        lambda: store.get(name),
        lambda: store.delete(name),
    ):
        with pytest.raises(KeystoreError, match="fs: key name contains invalid character"):
            operation()


def test_fs_path_that_is_a_file_is_rejected(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(KeystoreError, match="is not a directory"):
        FSKeystore(str(tmp_path / "file"))


def test_fs_reads_at_most_one_mebibyte(tmp_path: Path):
    (tmp_path / "big").write_bytes(b"x" * (2 << 20))
    assert len(FSKeystore(str(tmp_path)).get("big")) == 1 << 20


def test_fs_status_reports_unreachable_directories(tmp_path: Path):
    store = FSKeystore(str(tmp_path / "keys"))
    assert store.status() >= 0
    os.rmdir(tmp_path / "keys")
    with pytest.raises(KeystoreUnreachableError):
        store.status()


def test_fs_concurrent_creates_have_exactly_one_winner(tmp_path: Path):
    store = FSKeystore(str(tmp_path))
    results: list[str] = []

    def create(index: int) -> None:
        try:
            store.create("race", f"value-{index}".encode())
            results.append("ok")
        except KeyExistsError:
            results.append("exists")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1 and results.count("exists") == 15
    assert os.listdir(tmp_path) == ["race"]


def test_fs_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = FSKeystore(str(tmp_path))

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fs_module.os, "fsync", failing_fsync)
    with pytest.raises(KeystoreError, match="cannot create key 'k': Input/output error"):
        store.create("k", b"value")
    assert os.listdir(tmp_path) == []


def test_fs_removes_stale_temporary_files(tmp_path: Path):
    stale = tmp_path / ".kes-flask-0123456789abcdef.tmp"
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / ".kes-flask-fedcba9876543210.tmp"
    fresh.write_bytes(b"in flight")
    FSKeystore(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [fresh.name]


# --- the key cache -------------------------------------------------------------------------


class CountingStore(MemoryKeystore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.down = False

    def get(self, name: str) -> bytes:
        self.gets += 1
        if self.down:
            raise KeystoreUnreachableError("down")
        time.sleep(0.01)
        return super().get(name)

    def status(self) -> float:
        if self.down:
            raise KeystoreUnreachableError("down")
        return 0.001


def cache_over(store: CountingStore, **expiry: int) -> KeyCache:
    cache = KeyCache(store, CacheConfig(**expiry))
    cache.create("k", KeyVersion.generate("me"))
    return cache


def test_cache_hits_do_not_touch_the_store():
    store = CountingStore()
    cache = cache_over(store)
    first = cache.get("k")
    assert cache.get("k") is first
    assert store.gets == 1


def test_concurrent_misses_cause_one_backend_call():
    store = CountingStore()
    cache = cache_over(store)
    threads = [threading.Thread(target=cache.get, args=("k",)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.gets == 1


def test_not_found_is_not_cached():
    store = CountingStore()
    cache = cache_over(store)
    for _ in range(2):
        with pytest.raises(KeyNotFoundError):
            cache.get("missing")
    assert store.gets == 2


def test_invalid_stored_value_is_a_keystore_error():
    store = CountingStore()
    cache = KeyCache(store, CacheConfig())
    store.create("bad", b"garbage")
    with pytest.raises(KeystoreError, match="invalid stored value"):
        cache.get("bad")


def test_expire_all_and_second_chance_unused():
    store = CountingStore()
    cache = cache_over(store)
    cache.get("k")
    cache.expire_unused()  # used since the last tick: survives, marked unused
    cache.get("k")
    assert store.gets == 1
    cache.expire_unused()
    cache.expire_unused()  # not used in between: evicted
    cache.get("k")
    assert store.gets == 2
    cache.expire_all()
    cache.get("k")
    assert store.gets == 3


def test_offline_caching_keeps_keys_until_the_offline_expiry():
    store = CountingStore()
    cache = cache_over(store, expiry_offline=60 * SECOND)
    version = cache.get("k")
    store.down = True
    cache.probe()
    assert cache.offline
    with pytest.raises(KeystoreUnreachableError, match="keystore is offline"):
        cache.status()
    cache.expire_all()
    cache.expire_unused()
    cache.expire_unused()
    assert cache.get("k") is version  # served from the cache while the store is down
    cache.expire_offline()
    with pytest.raises(KeystoreUnreachableError):
        cache.get("k")
    store.down = False
    cache.probe()
    assert not cache.offline


def test_without_offline_caching_keys_expire_normally_while_offline():
    store = CountingStore()
    cache = cache_over(store)
    cache.get("k")
    store.down = True
    cache.probe()
    cache.expire_all()
    with pytest.raises(KeystoreUnreachableError):
        cache.get("k")


def test_ticker_runs_the_tasks():
    store = CountingStore()
    cache = KeyCache(store, CacheConfig(expiry_any=SECOND // 10))
    cache.create("k", KeyVersion.generate("me"))
    cache.start()
    try:
        cache.get("k")
        assert store.gets == 1
        # only the ticker's expiry (every 0.1 s) sends a get to the store again
        eventually(lambda: cache.get("k") and store.gets == 2)
    finally:
        cache.close()


def _child_reads_after_delete(
    path: str, generation: SharedGeneration, ready, deleted, result
) -> None:
    cache = KeyCache(FSKeystore(path), CacheConfig(), generation)
    cache.get("shared")  # cached in this process
    ready.set()
    deleted.wait(10)
    try:
        cache.get("shared")
        result.put("still cached")
    except KeyNotFoundError:
        result.put("not found")


def test_a_delete_in_one_process_flushes_the_caches_of_the_others(tmp_path: Path):
    generation = SharedGeneration()
    path = str(tmp_path / "keys")
    parent = KeyCache(FSKeystore(path), CacheConfig(), generation)
    parent.create("shared", KeyVersion.generate("me"))
    context = multiprocessing.get_context("fork")
    ready, deleted, result = context.Event(), context.Event(), context.Queue()
    child = context.Process(
        target=_child_reads_after_delete, args=(path, generation, ready, deleted, result)
    )
    child.start()
    assert ready.wait(10)
    parent.delete("shared")
    deleted.set()
    assert result.get(timeout=10) == "not found"
    child.join(10)


def test_fs_status_fails_when_the_directory_cannot_take_a_file(tmp_path: Path):
    store = FSKeystore(str(tmp_path / "keys"))
    assert store.status() > 0
    assert os.listdir(tmp_path / "keys") == []  # the probe file is gone again
    (tmp_path / "keys").rmdir()
    (tmp_path / "keys").mkdir(mode=0o500)  # read-only: root would still write, so also check
    if os.geteuid() != 0:
        with pytest.raises(KeystoreError, match="is not usable: Permission denied"):
            store.status()
    (tmp_path / "keys").rmdir()
    with pytest.raises(KeystoreUnreachableError):
        store.status()


def test_fs_listing_hides_in_flight_temporary_files(tmp_path: Path):
    store = FSKeystore(str(tmp_path))
    store.create("a", b"v")
    (tmp_path / ".kes-flask-0123456789abcdef.tmp").write_bytes(b"in flight")
    assert store.list("") == (["a"], "")


def test_fs_keystore_path_that_cannot_be_created_says_what_to_change(tmp_path: Path):
    # procfs refuses new directories even to root: a real, unprivileged-proof mkdir failure
    with pytest.raises(KeystoreError, match=r"keystore.fs.path: cannot create the directory"):
        FSKeystore("/proc/self/kes-flask-keys/x")
    (tmp_path / "file").write_text("")
    with pytest.raises(KeystoreError, match=r"keystore.fs.path: cannot access .*Not a directory"):
        FSKeystore(str(tmp_path / "file" / "keys"))
