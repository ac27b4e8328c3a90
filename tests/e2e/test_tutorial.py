"""Seed 004 ("KES on a MinIO Deployment") with ``kes`` replaced by ``kes-flask``, command by
command, and the dev server that ``make run`` starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kes_flask.client import ErrKeyExists, ErrKeyNotFound, ErrNotAllowed, KesClient, KesServerError
from kes_flask.server.banner import READY_LINE
from kes_flask.server.hardening import memory_lock_permitted
from tests.ports import PORT_TRIES, free_port, port_taken

pytestmark = pytest.mark.e2e

KES_FLASK = str(Path(sys.executable).with_name("kes-flask"))

SEED_CONFIG = """\
address: 0.0.0.0:7373 # Listen on all network interfaces on port 7373

admin:
  identity: disabled  # We disable the admin identity since we don't need it in this guide

tls:
  key: private.key    # The KES server TLS private key
  cert: public.crt    # The KES server TLS certificate

policy:
  my-app:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    identities:
    - {identity} # Use the identity of your client.crt

keystore:
  fs:
    path: ./keys # Choose a directory for the secret keys
"""


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KES_FLASK, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class PortTaken(Exception):
    """The picked port was bound by another process before the server bound it."""


class Process:
    """A server started like an operator does, waiting for the ready line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [KES_FLASK, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 30
        while READY_LINE not in self.out:
            if self.proc.poll() is not None:
                for reader in readers:
                    reader.join(5)
                text = "\n".join(self.out + self.err)
                raise PortTaken(text) if port_taken(text) else AssertionError(text)
            assert time.monotonic() < deadline, "\n".join(self.out + self.err)
            time.sleep(0.05)
        time.sleep(0.3)

    @classmethod
    def on_a_free_port(cls, cwd: Path, *args: str) -> tuple[Process, int]:
        """Start with ``{port}`` in ``args`` replaced by a free port; another one if it was
        taken before the server bound it."""
        for _ in range(PORT_TRIES - 1):
            port = free_port()
            try:
                return cls(cwd, *(arg.format(port=port) for arg in args)), port
            except PortTaken:
                continue
        port = free_port()
        return cls(cwd, *(arg.format(port=port) for arg in args)), port

    @staticmethod
    def _read(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def test_seed_004_filesystem_tutorial(tmp_path: Path):
    # 1. server key and certificate for 127.0.0.1 and localhost (the legacy spelling)
    step = run(tmp_path, "identity", "new", "--ip", "127.0.0.1", "localhost")
    assert step.returncode == 0, step.stderr
    assert (tmp_path / "private.key").exists() and (tmp_path / "public.crt").exists()

    # 2. MinIO's credentials
    step = run(tmp_path, "identity", "new", "--key=client.key", "--cert=client.crt", "MinIO")
    assert step.returncode == 0, step.stderr
    printed = re.search(r"^   ([0-9a-f]{64})$", step.stdout, re.M)
    assert printed, step.stdout
    identity = printed.group(1)

    # ... and the identity recomputed from the certificate
    step = run(tmp_path, "identity", "of", "client.crt")
    assert step.returncode == 0
    assert identity in step.stdout

    # 3. the tutorial's config, verbatim but for the identity
    (tmp_path / "config.yml").write_text(SEED_CONFIG.format(identity=identity))

    # 4. start the server as the tutorial says (port moved off 7373 for the test)
    server, port = Process.on_a_free_port(
        tmp_path, "server", "--config", "config.yml", "--auth", "off", "--addr", "127.0.0.1:{port}"
    )
    assert any("'--auth' flag is deprecated" in line for line in server.err)
    try:
        minio = KesClient(
            f"https://127.0.0.1:{port}",
            cert_file=str(tmp_path / "client.crt"),
            key_file=str(tmp_path / "client.key"),
            ca_file=str(tmp_path / "public.crt"),  # MINIO_KMS_KES_CAPATH=public.crt
        )
        # MinIO's startup: generate the default key, create it on 404
        with pytest.raises(KesServerError) as missing:
            minio.generate_key("minio-default-key", b"{}")
        assert missing.value == ErrKeyNotFound
        minio.create_key("minio-default-key")
        dek = minio.generate_key("minio-default-key", b'{"my-bucket":"my-bucket/object"}')
        assert (
            minio.decrypt("minio-default-key", dek.ciphertext, b'{"my-bucket":"my-bucket/object"}')
            == dek.plaintext
        )
        # `mc admin kms key create <alias> minio-key-name`
        minio.create_key("minio-key-name")
        with pytest.raises(KesServerError) as exists:
            minio.create_key("minio-key-name")
        assert exists.value == ErrKeyExists
        with pytest.raises(KesServerError) as denied:
            minio.create_key("my-key-1")
        assert denied.value == ErrNotAllowed
        assert sorted(os.listdir(tmp_path / "keys")) == ["minio-default-key", "minio-key-name"]
    finally:
        assert server.stop() == 0

    # 5. the tip: "Start a KES server instance with memory protection"
    args = (
        "server",
        "--config",
        "config.yml",
        "--auth",
        "off",
        "--mlock",
        "--addr",
        f"127.0.0.1:{port}",
    )
    if memory_lock_permitted()[0]:
        server = Process(tmp_path, *args)
        try:
            assert any(line.startswith("MLock      enabled") for line in server.out)
            assert minio.generate_key("minio-default-key").plaintext
        finally:
            assert server.stop() == 0
    else:  # without CAP_IPC_LOCK the request fails clearly instead of half-working
        refused = run(tmp_path, *args)
        assert refused.returncode == 1
        assert "Error: cannot lock memory (--mlock)" in refused.stderr


def test_dev_server_serves_and_cleans_up(tmp_path: Path):
    server, port = Process.on_a_free_port(tmp_path, "server", "--dev", "--addr", "127.0.0.1:{port}")
    banner = "\n".join(server.out)
    api_key = re.search(r"API Key\s+(kes:v1:\S+)", banner).group(1)
    directory = re.search(r"Filesystem \(temporary\): (\S+)", banner).group(1)
    assert re.search(
        r"curl --cacert \S+ --cert \S+ --key \S+ https://127\.0\.0\.1:\d+/v1/status", banner
    )
    try:
        clients = [
            KesClient(
                f"https://127.0.0.1:{port}", api_key=api_key, ca_file=f"{directory}/server.crt"
            )
            for _ in range(6)
        ]
        clients[0].create_key("dev-key")
        for client in clients:  # separate connections: any of the two workers may answer
            dek = client.generate_key("dev-key")
            assert clients[-1].decrypt("dev-key", dek.ciphertext) == dek.plaintext
    finally:
        assert server.stop() == 0
    assert not Path(directory).exists()
