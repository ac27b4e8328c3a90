"""Memory locking locks what a process touches without faulting in what it never touches.

Plain ``mlockall(MCL_CURRENT|MCL_FUTURE)`` made every new thread's 8 MiB stack resident: a
gthread worker grew by 8 MiB per request thread. Runs in a subprocess (locking is for life).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from kes_flask.server import hardening

LOCKED_CHILD = r"""
import json, threading
from kes_flask.server import hardening

def status(field):  # resident bytes; "Locked" = resident pages of locked mappings
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

hardening.lock_memory()
locked = status("Locked")
before = status("Rss")
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(8)]
for thread in threads:
    thread.start()
grown = status("Rss") - before
data = b"\x01" * (32 << 20)  # written, so every page is touched
touched = status("Locked") - locked
stop.set()
print(json.dumps({"locked": locked, "threads_grew": grown, "touched_locked": touched}))
"""


@pytest.fixture
def may_lock() -> None:
    permitted, reason = hardening.memory_lock_permitted()
    if not permitted:
        pytest.skip(f"memory locking is not permitted here: {reason}")


def test_locked_process_keeps_untouched_thread_stacks_out_of_memory(may_lock):
    done = subprocess.run(
        [sys.executable, "-c", LOCKED_CHILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["locked"] > 0  # locked at all
    # Eight idle threads: with whole 8 MiB stacks faulted in this would be 64 MiB.
    assert figures["threads_grew"] < 16 << 20
    # Every page the process writes is locked as it is touched.
    assert figures["touched_locked"] >= 32 << 20


def test_thread_stacks_shrink_but_never_grow():
    original = threading.stack_size()  # (this call also resets the size to the default)
    try:
        threading.stack_size(0)
        hardening.shrink_thread_stacks()
        assert threading.stack_size(0) == hardening.THREAD_STACK
        threading.stack_size(256 * 1024)
        hardening.shrink_thread_stacks()
        assert threading.stack_size(0) == 256 * 1024
    finally:
        threading.stack_size(original)
