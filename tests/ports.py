"""Ports for test servers: pick a free one, tell whether a process really listens on it.

A picked port is only free at the moment it is picked: another process (a second test run on
the same machine, an outgoing connection's ephemeral port) can take it before the server binds
it. Tests therefore start servers again on a new port when the bind fails (``PORT_TAKEN``), and
count a server as up only when *its own* socket listens on the port: a connection that
succeeds could be to whoever took it, and Go KES prints its ready line before it binds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# kes-flask's and Go KES's start-up error when the address is taken; gunicorn's own bind retry
# says "Connection in use"; MinIO "Specified port is already in use".
PORT_TAKEN = ("bind: address already in use", "Connection in use", "port is already in use")
PORT_TRIES = 5
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def free_port() -> int:
    """A port nothing listens on now; another process may take it before the caller binds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: bound, never listening,
    so no other process can start listening on it (unlike a free_port() left unbound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def port_taken(output: str) -> bool:
    return any(message in output for message in PORT_TAKEN)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (Linux /proc)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False
