"""Start and drive real ``kes-flask server`` processes (gunicorn master + workers) for tests."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kes_flask.auth.certs import (
    certificate_pem,
    client_certificate_for_api_key,
    identity_certificate,
    private_key_pem,
)
from kes_flask.auth.identity import APIKey, certificate_identity
from kes_flask.client import KesClient
from kes_flask.server.banner import READY_LINE, RELOADED_LINE
from tests.certificates import make_certificate
from tests.ports import PORT_TRIES, free_port, listens_on, port_taken

__all__ = ["PKI", "KesServer", "config_yaml", "eventually", "free_port"]

START_TIMEOUT = 30.0
# A server reuses a healthy /v1/status answer for up to 1 s (api/fast.py): a keystore failure
# shows in /v1/status within that, so tests poll for it.
STATUS_TTL = 1.0


def eventually(probe, timeout: float = 10.0, interval: float = 0.05):
    """``probe()``'s first truthy result, polling until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {probe}")
        time.sleep(interval)


@dataclass
class ClientIdentity:
    """A client credential as files (cert + key) plus its KES identity."""

    name: str
    cert_file: str
    key_file: str
    identity: str
    api_key: APIKey | None = None


def self_signed_ecdsa(cn: str, days: int = 30, expired: bool = False) -> tuple[bytes, bytes]:
    key, cert = make_certificate(cn, client_auth=True, days=days, expired=expired)
    return private_key_pem(key), certificate_pem(cert)


@dataclass
class PKI:
    directory: Path
    server_cert: str = ""
    server_key: str = ""
    identities: dict[str, ClientIdentity] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path) -> PKI:
        pki = cls(directory)
        server_key = APIKey.generate()
        cert = identity_certificate(
            server_key, "localhost", ["127.0.0.1"], ["localhost"], datetime.timedelta(days=30)
        )
        pki.server_key = pki._write("server.key", private_key_pem(server_key.private_key))
        pki.server_cert = pki._write("server.crt", certificate_pem(cert))
        for name in ("admin", "app", "stranger", "reader"):
            pki.add_api_key(name)
        key_pem, cert_pem = self_signed_ecdsa("ecdsa-client")
        pki.add_files("ecdsa", key_pem, cert_pem)
        key_pem, cert_pem = self_signed_ecdsa("expired-client", days=1, expired=True)
        pki.add_files("expired", key_pem, cert_pem)
        return pki

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return str(path)

    def add_api_key(self, name: str) -> ClientIdentity:
        key = APIKey.generate()
        cert = client_certificate_for_api_key(key)
        identity = self.add_files(name, private_key_pem(key.private_key), certificate_pem(cert))
        identity.api_key = key
        return identity

    def add_files(self, name: str, key_pem: bytes, cert_pem: bytes) -> ClientIdentity:
        cert_file = self._write(f"{name}.crt", cert_pem)
        key_file = self._write(f"{name}.key", key_pem)
        der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
        identity = ClientIdentity(name, cert_file, key_file, certificate_identity(der))
        self.identities[name] = identity
        return identity

    def __getitem__(self, name: str) -> ClientIdentity:
        return self.identities[name]


class KesServer:
    """A ``kes-flask server`` subprocess; ``output`` collects stdout and stderr lines."""

    def __init__(
        self,
        workdir: Path,
        pki: PKI,
        config: str,
        workers: int = 2,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.config_path = workdir / "config.yml"
        self.config_path.write_text(config)
        self.workers = workers
        self.extra_args = extra_args
        self.env = env
        self.port = free_port()
        self._picked_port = self.port  # a test that sets .port itself keeps it, taken or not
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.taken_ports: list[int] = []  # picked ports another process bound first
        self._ready_once = False
        self._readers: list[threading.Thread] = []
        self._lock = threading.Condition()

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kes_flask",
            "server",
            "--config",
            str(self.config_path),
            "--addr",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]

    def start(self, wait: bool = True) -> KesServer:
        """Start the process; with ``wait``, until it is ready and accepts connections.

        ``wait_for`` starts it again on a new port if its first start found the picked port
        taken (free_port() cannot reserve it), so read ``port``/``endpoint`` after it is ready.
        """
        with self._lock:
            self._launch()
        if wait:
            self.wait_ready()
        return self

    def _launch(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, sink), daemon=True)
            for stream, sink in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._lock:
                sink.append(line.rstrip("\n"))
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def _drain(self, timeout: float = 5.0) -> None:
        """Wait (lock held, released while waiting) until an exited process's output is read."""
        deadline = time.monotonic() + timeout
        while any(reader.is_alive() for reader in self._readers):
            if time.monotonic() > deadline:
                return
            self._lock.wait(0.05)

    def _moved_off_a_taken_port(self) -> bool:
        """After an exit: if the first start lost its picked port to another process (between
        free_port() and the bind), start again on a new port. Lock held."""
        self._drain()
        if (
            self._ready_once
            or self.port != self._picked_port
            or len(self.taken_ports) >= PORT_TRIES
            or not port_taken("\n".join(self.stderr + self.stdout))
        ):
            return False
        self.taken_ports.append(self.port)
        self.port = self._picked_port = free_port()
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self.stdout, self.stderr = [], []  # the lost start's readers keep the old lists
        self._launch()
        return True

    def text(self) -> str:
        with self._lock:
            return "\n".join([*self.stdout, "--- stderr ---", *self.stderr])

    def wait_for(self, needle: str, timeout: float = START_TIMEOUT, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(needle in line for line in self.stdout + self.stderr) < count:
                if self.process is not None and self.process.poll() is not None:
                    if self._moved_off_a_taken_port():
                        continue
                    raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.text()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"'{needle}' not seen within {timeout}s:\n{self.text()}")
                self._lock.wait(min(remaining, 0.2))

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the ready line is printed and the process's own socket listens on the port."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_for(READY_LINE, timeout=max(deadline - time.monotonic(), 0.1))
            assert self.process is not None
            while not listens_on(self.process.pid, self.port):
                if self.process.poll() is not None:
                    break  # Go KES prints its ready line before it binds
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not listening on {self.port} in {timeout}s:\n{self.text()}"
                    )
                time.sleep(0.05)
            else:
                self._ready_once = True
                return
            with self._lock:
                if not self._moved_off_a_taken_port():
                    raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.text()}")

    def reload(self, expect_success: bool = True) -> None:
        assert self.process is not None
        done = sum(RELOADED_LINE in line for line in self.stdout)
        failed = sum("Failed to reload" in line for line in self.stderr)
        self.process.send_signal(signal.SIGHUP)
        if expect_success:
            self.wait_for(RELOADED_LINE, count=done + 1)
        else:
            self.wait_for("Failed to reload", count=failed + 1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def worker_pids(self, timeout: float = 15.0) -> list[int]:
        """The workers' PIDs once all of them have been forked and have loaded the app."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + timeout
        while True:
            pids = sorted(int(pid) for pid in children.read_text().split())
            booted = sum("Booting worker" in line for line in self.stderr)
            if len(pids) == self.workers and booted >= self.workers:
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {self.workers} workers, found {pids}")
            time.sleep(0.05)

    def client(self, name: str, **kwargs) -> KesClient:
        identity = self.pki[name]
        if identity.api_key is not None and kwargs.pop("use_api_key", True):
            return KesClient(
                self.endpoint, api_key=identity.api_key, ca_file=self.pki.server_cert, **kwargs
            )
        return KesClient(
            self.endpoint,
            cert_file=identity.cert_file,
            key_file=identity.key_file,
            ca_file=self.pki.server_cert,
            **kwargs,
        )

    def tls_context(self, name: str | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.pki.server_cert)
        context.set_alpn_protocols(["h2", "http/1.1"])
        if name is not None:
            identity = self.pki[name]
            context.load_cert_chain(identity.cert_file, identity.key_file)
        return context

    def raw(self, request: bytes, name: str | None = "admin", timeout: float = 10.0) -> bytes:
        """Send raw bytes over a fresh TLS connection; return everything read until close."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as plain:
            with self.tls_context(name).wrap_socket(plain, server_hostname="localhost") as tls:
                tls.sendall(request)
                chunks = []
                while True:
                    try:
                        data = tls.recv(65536)
                    except (TimeoutError, ssl.SSLError, ConnectionResetError):
                        break
                    if not data:
                        break
                    chunks.append(data)
                    if b"Connection: close" not in b"".join(chunks) and _complete(b"".join(chunks)):
                        break
                return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def config_yaml(
    pki: PKI, keystore_dir: str = "", admin: str | None = None, extra: str = "", keystore: str = ""
) -> str:
    """A server config; ``keystore`` is a whole ``keystore:`` section (else FS at keystore_dir)."""
    admin_identity = admin if admin is not None else pki["admin"].identity
    section = keystore or f"keystore:\n  fs:\n    path: {keystore_dir}\n"
    return f"""
admin:
  identity: {admin_identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
{section.rstrip()}
{extra}
"""
