"""Keep key material out of swap and core files (Linux).

Memory locking uses ``mlockall(MCL_CURRENT|MCL_FUTURE)``. With a finite ``RLIMIT_MEMLOCK`` and no
``CAP_IPC_LOCK`` that is a trap: locking may succeed now and make later allocations fail once
the process grows past the limit. So locking is attempted only where it is unconditional —
the capability or an unlimited limit — and an explicit request fails loudly otherwise.

Plain ``mlockall`` faults in every mapped page at once: each thread's whole 8 MiB stack
(``RLIMIT_STACK``) and every page of every shared library, which made a gthread worker grow from
≈70 to ≈130 MiB as its request threads started. ``MCL_ONFAULT`` (Linux ≥ 4.4) locks each page
when it is first touched instead: every page that ever holds data is locked just the same, and
untouched ones cost nothing. Where the kernel lacks it, locking falls back to plain
``mlockall`` and shrinks the stacks of threads started afterwards to ``THREAD_STACK`` (the
setting lives in the interpreter's memory, so workers forked from a locked master inherit it).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
import threading
from enum import Enum

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_MCL_ONFAULT = 4
_PR_SET_DUMPABLE = 4
_CAP_IPC_LOCK = 14
# Ample for Python 3.11+ (Python-to-Python calls use no C stack) and OpenSSL; 8x under glibc's
# default, and the whole of it is resident once locked.
THREAD_STACK = 1024 * 1024

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
    # The interpreter's own symbols include libc's. ctypes.util.find_library would cost an
    # import and an `ldconfig -p` subprocess in the master and again in every worker it forks.
    return ctypes.CDLL(None, use_errno=True)


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
    libc = _libc()
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:  # EINVAL: a kernel without MCL_ONFAULT
        raise MemoryLockError(f"mlockall failed: {os.strerror(ctypes.get_errno())}")
    shrink_thread_stacks()
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        raise MemoryLockError(f"mlockall failed: {os.strerror(ctypes.get_errno())}")


def shrink_thread_stacks() -> None:
    """Give threads started from now on ``THREAD_STACK`` bytes of stack, unless the setting is
    smaller already. (``threading.stack_size()`` without an argument would reset it to 0, the
    platform default, so the old value is read by setting the new one.)"""
    previous = threading.stack_size(THREAD_STACK)
    if 0 < previous < THREAD_STACK:
        threading.stack_size(previous)


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
