"""Process figures for ``/v1/status`` and ``/v1/metrics``, named the way Go KES reports them."""

from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Iterable
from dataclasses import dataclass

_GOOS = {"linux": "linux", "darwin": "darwin", "win32": "windows", "cygwin": "windows"}
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def go_os() -> str:
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return _GOOS.get(sys.platform, sys.platform)


def go_arch() -> str:
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine)


def cpu_count() -> int:
    return os.cpu_count() or 1


def usable_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return cpu_count()


def memory_usage() -> tuple[int, int]:
    """Resident and stack bytes of this process (from /proc where available)."""
    resident = stack = 0
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    resident = int(line.split()[1]) * 1024
                elif line.startswith("VmStk:"):
                    stack = int(line.split()[1]) * 1024
    except OSError:
        pass
    if not resident:
        resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return resident or 1, stack or 8 << 20


@dataclass
class ProcessFigures:
    """Sums over a set of processes (the master and its workers); 0 where /proc is missing."""

    threads: int = 0
    heap: int = 0
    stack: int = 0


_STATUS_FIELDS = {"Threads:": "threads", "RssAnon:": "heap", "VmStk:": "stack"}


def process_figures(pids: Iterable[int]) -> ProcessFigures:
    """Threads, anonymous resident memory (≈ heap) and stack of each process, summed.

    ``/proc/<pid>/status`` stays world-readable for non-dumpable processes, unlike ``smaps``.
    A process that exited meanwhile is skipped.
    """
    figures = ProcessFigures()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    name = _STATUS_FIELDS.get(line.split(":", 1)[0] + ":")
                    if name is None:
                        continue
                    value = int(line.split()[1])
                    if name != "threads":
                        value *= 1024
                    setattr(figures, name, getattr(figures, name) + value)
        except (OSError, ValueError, IndexError):
            continue
    return figures
