"""Keep key material out of swap and core files (Linux).

Memory locking uses ``mlockall(MCL_CURRENT|MCL_FUTURE)``. With a finite ``RLIMIT_MEMLOCK`` and no
``CAP_IPC_LOCK`` that is a trap: locking may succeed now and make later allocations fail once
the process grows past the limit. So locking is attempted only where it is unconditional —
the capability or an unlimited limit — and an explicit request fails loudly otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
from enum import Enum

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_PR_SET_DUMPABLE = 4
_CAP_IPC_LOCK = 14

log = logging.getLogger("kes_flask.server")


class MemoryLockError(Exception):
    """Memory could not be locked although locking was required."""


class MemoryLock(Enum):
    """``--mlock`` / ``mlock: true`` require it, ``mlock: false`` skips it, unset tries."""

    REQUIRED = "required"
    TRY = "try"
    OFF = "off"

    @classmethod
    def choose(cls, flag: bool, config_value: bool | None) -> MemoryLock:
        if flag or config_value is True:
            return cls.REQUIRED
        return cls.OFF if config_value is False else cls.TRY


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _has_ipc_lock_capability() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_IPC_LOCK & 1)
    except (OSError, ValueError):
        pass
    return False


def memory_lock_permitted() -> tuple[bool, str]:
    """Whether locking all memory is unconditional here, and why not when it is not."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY or _has_ipc_lock_capability():
        return True, ""
    return False, (
        f"RLIMIT_MEMLOCK is {soft} bytes and the process lacks CAP_IPC_LOCK (grant it, e.g. "
        "AmbientCapabilities=CAP_IPC_LOCK and LimitMEMLOCK=infinity in the systemd unit, or "
        "`setcap cap_ipc_lock=+ep` on the Python interpreter)"
    )


def lock_memory() -> None:
    if _libc().mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        raise MemoryLockError(f"mlockall failed: {os.strerror(ctypes.get_errno())}")


def apply_memory_lock(mode: MemoryLock) -> bool:
    """Lock this process's memory as ``mode`` says; True if it is locked."""
    if mode is MemoryLock.OFF:
        return False
    permitted, reason = memory_lock_permitted()
    if not permitted:
        if mode is MemoryLock.REQUIRED:
            raise MemoryLockError(f"cannot lock memory (--mlock): {reason}")
        log.warning("memory is not locked: %s", reason)
        return False
    try:
        lock_memory()
    except MemoryLockError as err:
        if mode is MemoryLock.REQUIRED:
            raise MemoryLockError(f"cannot lock memory (--mlock): {err}") from None
        log.warning("memory is not locked: %s", err)
        return False
    return True


def worker_mode(master_locked: bool) -> MemoryLock:
    """Workers follow the master: it has already checked (and warned) for this machine."""
    return MemoryLock.REQUIRED if master_locked else MemoryLock.OFF


def disable_core_dumps() -> None:
    """No core files, and no ptrace or /proc/<pid>/mem access by same-user processes."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
