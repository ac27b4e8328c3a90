"""The two servers under test, pinned to CPUs, and what the bench measures on them directly:
cold start (exec to the first successful answer), memory, the cost of an idle connection.

Both run the same YAML config (one FS keystore directory, one admin identity) and are driven
through the test suite's server harness, so they start and stop exactly as in the tests.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Memory, children, cpu_seconds, threads
from kes_flask.server.banner import READY_LINE
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer

FLASK = "kes-flask"
GO = "Go KES"
STATUS_REQUEST = b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _pinned(command: list[str], cpus: str | None) -> list[str]:
    if cpus is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", cpus, *command]


class PinnedFlask(KesServer):
    def __init__(self, *args, cpus: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cpus = cpus

    def command(self) -> list[str]:
        return _pinned(super().command(), self.cpus)


class PinnedGo(GoKesServer):
    def __init__(self, *args, cpus: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cpus = cpus

    def command(self) -> list[str]:
        return _pinned(super().command(), self.cpus)


@dataclass
class MemoryFigures:
    """Master + workers together, and each worker alone (Go KES: one process, no workers)."""

    total: Memory
    workers: list[Memory] = field(default_factory=list)
    threads: int = 0


@dataclass
class Target:
    """One server process tree: kes-flask (master + workers) or Go KES."""

    kind: str
    server: KesServer
    label: str

    @property
    def url(self) -> str:
        return self.server.endpoint

    def start(self) -> tuple[float, float]:
        """Start the server; return seconds from exec to the first successful answer, and the
        CPU seconds its processes used until then (much less sensitive to a busy machine)."""
        began = time.monotonic()
        self.server.start(wait=False)
        cold = first_answer(self.server, began)
        cpu = cpu_seconds(self.pids())
        self.server.wait_for(READY_LINE)
        if self.kind == FLASK:
            self.server.worker_pids()
        return cold, cpu

    def stop(self) -> None:
        self.server.stop()

    def pids(self) -> list[int]:
        assert self.server.process is not None
        master = self.server.process.pid
        return [master, *children(master)] if self.kind == FLASK else [master]

    def worker_pids(self) -> list[int]:
        return self.pids()[1:] if self.kind == FLASK else []

    def memory(self) -> MemoryFigures:
        pids = self.pids()
        figures = [Memory.of(pid) for pid in pids]
        total = figures[0]
        for figure in figures[1:]:
            total = total + figure
        return MemoryFigures(
            total, figures[1:] if self.kind == FLASK else [], sum(threads(p) for p in pids)
        )


def make_target(
    kind: str,
    workdir: Path,
    pki: PKI,
    config: str,
    cores: int,
    cpus: str | None,
    go_binary: Path | None = None,
    env: dict[str, str] | None = None,
) -> Target:
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == FLASK:
        server: KesServer = PinnedFlask(workdir, pki, config, workers=cores, env=env, cpus=cpus)
        return Target(kind, server, f"kes-flask, {cores} worker{'s' if cores > 1 else ''}")
    assert go_binary is not None
    go_env = {"GOMAXPROCS": str(cores), **(env or {})}
    server = PinnedGo(go_binary, workdir, pki, config, env=go_env, cpus=cpus)
    return Target(kind, server, f"Go KES, GOMAXPROCS={cores}")


def _context(server: KesServer) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.pki.server_cert)
    admin = server.pki["admin"]
    context.load_cert_chain(admin.cert_file, admin.key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def status_once(server: KesServer, context: ssl.SSLContext, timeout: float = 10.0) -> int:
    """The HTTP status of one GET /v1/status over a new mTLS connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            tls.sendall(STATUS_REQUEST)
            head = b""
            while b"\r\n" not in head:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def first_answer(server: KesServer, began: float, timeout: float = 60.0) -> float:
    """Probe until /v1/status answers 200; seconds since ``began`` (the exec)."""
    context = _context(server)
    deadline = began + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"{server.command()[0]} exited:\n{server.text()}")
        try:
            if status_once(server, context) == 200:
                return time.monotonic() - began
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.002)
    raise TimeoutError(f"no answer within {timeout}s:\n{server.text()}")


def connection_cost(target: Target, count: int) -> float:
    """Bytes of worker RSS per idle kept-alive TLS connection (``count`` of them open)."""
    context = _context(target.server)
    request = STATUS_REQUEST.replace(b"Connection: close", b"Connection: keep-alive")
    before = sum(Memory.of(pid).rss for pid in target.worker_pids())
    opened = []
    try:
        for _ in range(count):
            plain = socket.create_connection(("127.0.0.1", target.server.port), timeout=30)
            tls = context.wrap_socket(plain, server_hostname="localhost")
            opened.append(tls)
            tls.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed before the answer")
                data += chunk
        time.sleep(0.5)  # let the worker park the connections in its keep-alive poller
        after = sum(Memory.of(pid).rss for pid in target.worker_pids())
    finally:
        for tls in opened:
            tls.close()
    return (after - before) / count
