"""Process and machine figures read from /proc: memory, CPU time, load, the facts of the host.

RSS counts pages a forked worker still shares with its master, so the memory figures carry PSS
(shared pages split between the processes sharing them) and private memory as well.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Memory:
    """One process's memory in bytes (from ``/proc/<pid>/smaps_rollup``)."""

    rss: int
    pss: int
    private: int

    @classmethod
    def of(cls, pid: int) -> Memory:
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            value = rest.split()
            if value and value[0].isdigit():
                fields[name] = int(value[0]) * 1024
        private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        return cls(fields.get("Rss", 0), fields.get("Pss", 0), private)

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss + other.rss, self.pss + other.pss, self.private + other.private)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return sorted(int(child) for child in path.read_text().split())
    except FileNotFoundError:
        return []


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (children not included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "not available"


def machine_facts(repository: Path, bombardier: str | None, go: str | None) -> dict[str, str]:
    """What a reader needs to judge the figures: CPU, cores, memory, kernel, tool versions."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / MIB:.1f} GiB"
            break
    commit = _first_line(["git", "-C", str(repository), "log", "-1", "--format=%h %s"])
    return {
        "CPU": f"{model}, {os.cpu_count()} logical CPUs",
        "memory": memory,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Go": _first_line([go, "version"]) if go else "not installed",
        "bombardier": _first_line([bombardier, "--version"]) if bombardier else "not installed",
        "taskset": "yes" if shutil.which("taskset") else "no (servers not pinned)",
        "kes-flask commit": commit,
    }
