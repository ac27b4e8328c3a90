"""Keep key material out of swap and core files (Linux)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_PR_SET_DUMPABLE = 4


class MemoryLockError(OSError):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def lock_memory() -> None:
    """``mlockall(MCL_CURRENT|MCL_FUTURE)``; needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK."""
    if _libc().mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        errno = ctypes.get_errno()
        raise MemoryLockError(
            errno,
            f"mlockall failed: {os.strerror(errno)} (grant CAP_IPC_LOCK, e.g. "
            "AmbientCapabilities=CAP_IPC_LOCK with LimitMEMLOCK=infinity in systemd)",
        )


def disable_core_dumps() -> None:
    """No core files, and no ptrace/proc access by same-user processes."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
