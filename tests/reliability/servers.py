"""Servers for fault injection: one that root's permission bits apply to, one on a tiny tmpfs."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.kes_server import PKI, KesServer
from tests.reliability.rawhttp import Answer, Connection, client_context

PROBE_INTERVAL = 10.0  # kes_flask.keystore.cache.PROBE_INTERVAL: the keystore "ping interval"


class WrappedServer(KesServer):
    """``kes-flask server`` started through a wrapper command (``unshare …``) that execs it,
    so the PID is still the gunicorn master's and signals reach it."""

    def __init__(self, *args, prefix: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prefix = prefix

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()]


def unprivileged_prefix() -> list[str]:
    """As root, permission bits do not stop the server; in a new user namespace without a uid
    mapping it keeps uid 0 on files but loses every capability, so ``chmod 000`` binds it."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        raise RuntimeError("running as root needs 'unshare' (util-linux) to drop capabilities")
    return ["unshare", "--user"]


def tmpfs_prefix(directory: Path, size: str) -> list[str]:
    """A private mount namespace with a ``size`` tmpfs on ``directory``: a real ENOSPC source
    for root and (where user namespaces are allowed) for unprivileged users alike."""
    if shutil.which("unshare") is None:
        raise RuntimeError("the disk-full test needs 'unshare' (util-linux)")
    script = 'mount -t tmpfs -o size="$0",mode=0700 tmpfs "$1" && shift && exec "$@"'
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        script,
        size,
        str(directory),
    ]


class Api:
    """One identity's requests, each on a fresh TLS connection: no SDK retries hiding answers,
    and no kept-alive connection that a restarted worker would break."""

    def __init__(self, server: KesServer, pki: PKI, name: str = "admin") -> None:
        self.port = server.port
        self.context = client_context(pki.server_cert, pki[name].cert_file, pki[name].key_file)

    def call(self, method: str, path: str, body: bytes = b"", timeout: float = 30.0) -> Answer:
        conn = Connection(self.port, self.context, timeout)
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
            conn.send(head.encode() + b"Connection: close\r\n\r\n" + body)
            return conn.answer()
        finally:
            conn.close()

    def close(self) -> None:
        pass


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Probe ``condition`` until it holds; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - started
