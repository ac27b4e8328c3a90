"""Filesystem keystore: one file per key, byte-compatible with Go KES (keystores.md §2).

Several gunicorn workers share the directory, so a reader must never see a half-written key:
values are written to a private temporary file (O_EXCL, 0600, fsync) and published with
``link(2)``, which fails atomically when the name exists — the same create-exclusive semantics
as Go KES's ``O_EXCL`` open, without the window in which the file is empty.
"""

from __future__ import annotations

import errno
import os
import secrets
import time

from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)

MAX_VALUE_SIZE = 1 << 20  # Go KES reads at most 1 MiB of a key file
_TEMP_PREFIX = ".kes-flask-"
_TEMP_SUFFIX = ".tmp"
_STALE_TEMP_AGE = 3600.0
# Enough bytes that a full disk refuses the write (an empty file needs only an inode).
_PROBE_VALUE = b"kes-flask write probe\n" * 200
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


class FSKeystore:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"Filesystem: {path}"
        try:
            os.stat(path)
        except FileNotFoundError:
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except OSError as err:
                raise KeystoreError(
                    f"keystore.fs.path: cannot create the directory '{path}': {err.strerror} "
                    "(create it with write permission for the server's user, or change the path)"
                ) from None
        except OSError as err:
            raise KeystoreError(
                f"keystore.fs.path: cannot access '{path}': {err.strerror} "
                "(grant the server's user access to it, or change the path)"
            ) from None
        if not os.path.isdir(path):
            raise KeystoreError(f"keystore.fs.path: '{path}' is not a directory")
        self._remove_stale_temp_files()

    def _file(self, name: str) -> str:
        if not name or "/" in name or "\\" in name or "." in name:
            raise KeystoreError("fs: key name contains invalid character")
        return os.path.join(self.path, name)

    def create(self, name: str, value: bytes) -> None:
        target = self._file(name)
        temp = self._temp_name()
        try:
            _write_new_file(temp, value)
        except OSError as err:  # EACCES, ENOSPC, EDQUOT, EROFS, EIO: the route's 502
            raise KeystoreError(f"fs: cannot create key '{name}': {err.strerror}") from None
        try:
            os.link(temp, target)
        except FileExistsError:
            raise KeyExistsError(name) from None
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise KeystoreError(f"fs: cannot create key '{name}': {err.strerror}") from None
            self._create_in_place(name, target, value)  # filesystems without hard links
        finally:
            _unlink_quietly(temp)
        _fsync_directory(self.path)

    def _temp_name(self) -> str:
        return os.path.join(self.path, f"{_TEMP_PREFIX}{secrets.token_hex(8)}{_TEMP_SUFFIX}")

    def _create_in_place(self, name: str, target: str, value: bytes) -> None:
        try:
            _write_new_file(target, value)
        except FileExistsError:
            raise KeyExistsError(name) from None
        except OSError as err:
            raise KeystoreError(f"fs: cannot create key '{name}': {err.strerror}") from None

    def get(self, name: str) -> bytes:
        try:
            with open(self._file(name), "rb") as file:
                return file.read(MAX_VALUE_SIZE)
        except FileNotFoundError:
            raise KeyNotFoundError(name) from None
        except OSError as err:
            raise KeystoreError(f"fs: cannot read key '{name}': {err.strerror}") from None

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._file(name))
        except FileNotFoundError:
            raise KeyNotFoundError(name) from None
        except OSError as err:
            raise KeystoreError(f"fs: cannot delete key '{name}': {err.strerror}") from None

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        try:
            names = os.listdir(self.path)
        except OSError as err:
            raise KeystoreError(f"fs: cannot list '{self.path}': {err.strerror}") from None
        names = [n for n in names if not (n.startswith(_TEMP_PREFIX) and n.endswith(_TEMP_SUFFIX))]
        return paginate(names, prefix, limit)

    def status(self) -> float:
        """Stat the directory, then prove it is listable and writable with a probe file.

        A directory that exists but cannot take a new key (``chmod 000``, disk full, read-only
        remount) must not look healthy: ``/v1/ready`` would send traffic to a node whose
        every create fails.
        """
        start = time.perf_counter()
        try:
            os.stat(self.path)
        except OSError as err:
            raise KeystoreUnreachableError(f"fs: '{self.path}': {err.strerror}") from None
        probe = self._temp_name()
        try:
            os.listdir(self.path)
            _write_new_file(probe, _PROBE_VALUE, sync=False)
        except OSError as err:
            raise KeystoreError(f"fs: '{self.path}' is not usable: {err.strerror}") from None
        finally:
            _unlink_quietly(probe)
        return time.perf_counter() - start

    def close(self) -> None:
        pass

    def _remove_stale_temp_files(self) -> None:
        """Temporary files survive only a crash between write and link; sweep old ones."""
        now = time.time()
        try:
            entries = os.scandir(self.path)
        except OSError:
            return
        with entries:
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(_TEMP_SUFFIX):
                    try:
                        if now - entry.stat(follow_symlinks=False).st_mtime > _STALE_TEMP_AGE:
                            os.unlink(entry.path)
                    except OSError:
                        pass


def _write_new_file(path: str, value: bytes, sync: bool = True) -> None:
    """Create ``path`` exclusively with mode 0600, write all of ``value`` and fsync it."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(value)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(path)
        raise
    os.close(fd)


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
