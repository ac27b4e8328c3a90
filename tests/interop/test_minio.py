"""Real MinIO (built from source) encrypting objects through kes-flask (spec/minio.md §10).

Includes the drop-in swap an operator performs: objects written while MinIO used Go KES stay
readable after kes-flask replaces it on the same address, configuration and key store.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from minio import Minio
from minio.sse import SseS3

from kes_flask.auth.identity import APIKey
from kes_flask.client import KesClient
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer
from tests.ports import PORT_TRIES, free_port, port_taken

MARKER = b"UNIQUE-PLAINTEXT-MARKER-4711 "
DATA = MARKER * 10
ROOT_USER, ROOT_PASSWORD = "minioadmin", "minioadmin123"


def kes_config(pki: PKI, identity: str, keys: Path) -> str:
    return f"""
admin:
  identity: disabled
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/describe/minio-*
    - /v1/key/list/*
    - /v1/status
    - /v1/api
    identities:
    - {identity}
keystore:
  fs:
    path: {keys}
"""


class PortTaken(Exception):
    """A port picked for MinIO was bound by another process before MinIO bound it."""


class MinIOServer:
    def __init__(
        self, binary: Path, data: Path, kes_endpoint: str, api_key: APIKey, ca_file: str
    ) -> None:
        self.binary, self.data = binary, data
        self.port, self.console = free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MINIO_")},
            "MINIO_ROOT_USER": ROOT_USER,
            "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
            "MINIO_KMS_KES_ENDPOINT": kes_endpoint,
            "MINIO_KMS_KES_API_KEY": str(api_key),
            "MINIO_KMS_KES_KEY_NAME": "minio-default-key",
            "MINIO_KMS_KES_CAPATH": ca_file,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"minio-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MinIOServer:
        """Until ready; on new ports if another process took a picked one before MinIO did."""
        for _ in range(PORT_TRIES - 1):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port, self.console = free_port(), free_port()
                self.log = self.data.parent / f"minio-{self.port}.log"
        return self._start(timeout)

    def _start(self, timeout: float) -> MinIOServer:
        command = [str(self.binary), "server", str(self.data), "--address", self.endpoint]
        command += ["--console-address", f"127.0.0.1:{self.console}"]
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log.read_text()[-3000:]
                raise PortTaken(text) if port_taken(text) else AssertionError(text)
            try:
                with urllib.request.urlopen(
                    f"http://{self.endpoint}/minio/health/ready", timeout=2
                ) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def sdk(self) -> Minio:
        return Minio(self.endpoint, ROOT_USER, ROOT_PASSWORD, secure=False)

    def s3(self):
        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            aws_access_key_id=ROOT_USER,
            aws_secret_access_key=ROOT_PASSWORD,
            region_name="us-east-1",
        )


@pytest.fixture
def minio_identity(pki: PKI) -> APIKey:
    return APIKey.generate()


def write_encrypted_objects(
    minio: MinIOServer, kes_endpoint: str, api_key: APIKey, ca_file: str
) -> None:
    KesClient(kes_endpoint, api_key=api_key, ca_file=ca_file).create_key("minio-sse-key")
    sdk = minio.sdk()
    sdk.make_bucket("test-bucket")
    sdk.put_object("test-bucket", "sse-s3.txt", io.BytesIO(DATA), len(DATA), sse=SseS3())
    minio.s3().put_object(
        Bucket="test-bucket",
        Key="kms.txt",
        Body=DATA,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId="minio-sse-key",
    )
    sdk.put_object("test-bucket", "plain.txt", io.BytesIO(DATA), len(DATA))


def read_back(minio: MinIOServer) -> None:
    sdk = minio.sdk()
    stat = sdk.stat_object("test-bucket", "sse-s3.txt")
    assert stat.metadata.get("x-amz-server-side-encryption") == "AES256"
    assert sdk.get_object("test-bucket", "sse-s3.txt").read() == DATA
    head = minio.s3().head_object(Bucket="test-bucket", Key="kms.txt")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == "arn:aws:kms:minio-sse-key"
    assert minio.s3().get_object(Bucket="test-bucket", Key="kms.txt")["Body"].read() == DATA


def files_with_plaintext(data: Path) -> list[str]:
    found = []
    for path in (data / "test-bucket").rglob("*"):
        if path.is_file() and MARKER in path.read_bytes():
            found.append(str(path.relative_to(data / "test-bucket")).split("/")[0])
    return sorted(set(found))


def test_minio_encrypts_through_kes_flask(
    tmp_path: Path, pki: PKI, minio_binary: Path, minio_identity: APIKey
):
    keys = tmp_path / "kes-keys"
    kes = KesServer(
        tmp_path, pki, kes_config(pki, minio_identity.identity, keys), workers=2
    ).start()
    minio = MinIOServer(
        minio_binary, tmp_path / "data", kes.endpoint, minio_identity, pki.server_cert
    )
    try:
        minio.start()
        assert (keys / "minio-default-key").exists()  # MinIO's startup created its default key
        write_encrypted_objects(minio, kes.endpoint, minio_identity, pki.server_cert)
        read_back(minio)
        assert files_with_plaintext(tmp_path / "data") == ["plain.txt"]  # encrypted at rest
        # MinIO restarts against the existing key (generate succeeds, no create)
        minio.stop()
        minio.start()
        read_back(minio)
        # kes-flask down: encrypted objects are unreadable, plain ones still served
        kes.stop()
        with pytest.raises(ClientError) as unavailable:
            minio.s3().get_object(Bucket="test-bucket", Key="sse-s3.txt")
        assert (
            unavailable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        )  # KMS failure
        assert minio.sdk().get_object("test-bucket", "plain.txt").read() == DATA
        kes.start()
        read_back(minio)
    finally:
        minio.stop()
        kes.stop()


def test_swapping_go_kes_for_kes_flask_keeps_objects_readable(
    tmp_path: Path, pki: PKI, go_kes: Path, minio_binary: Path, minio_identity: APIKey
):
    keys = tmp_path / "kes-keys"
    config = kes_config(pki, minio_identity.identity, keys)
    go = (
        GoKesServer(go_kes, tmp_path / "go", pki, config)
        if (tmp_path / "go").mkdir() is None
        else None
    )
    go.start()
    minio = MinIOServer(
        minio_binary, tmp_path / "data", go.endpoint, minio_identity, pki.server_cert
    )
    try:
        minio.start()
        write_encrypted_objects(minio, go.endpoint, minio_identity, pki.server_cert)
        read_back(minio)
        go.stop()
        # the binary swap: same address, same config, same key store
        (tmp_path / "flask").mkdir()
        flask = KesServer(tmp_path / "flask", pki, config, workers=2)
        flask.port, flask.endpoint = go.port, go.endpoint
        flask.start()
        try:
            read_back(minio)  # DEKs sealed by Go KES, unsealed by kes-flask
            minio.sdk().put_object(
                "test-bucket", "after-swap.txt", io.BytesIO(DATA), len(DATA), sse=SseS3()
            )
        finally:
            flask.stop()
        go.start()  # and back: Go KES reads what kes-flask sealed
        assert minio.sdk().get_object("test-bucket", "after-swap.txt").read() == DATA
    finally:
        minio.stop()
        go.stop()
