"""AWS Secrets Manager (a real moto server) and GCP Secret Manager (the HTTPS fake) behind a
real kes-flask server: Go KES's bytes both ways, throttling, expired tokens, outages with the key
cache serving, and no secret in any line of output."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager_v1
from google.oauth2 import service_account

from kes_flask.client import ErrKeyNotFound, KesServerError
from kes_flask.config.model import GCPKeystoreConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore.gcp import service_account_info
from tests.backends import aws as aws_backend
from tests.backends import gcp as gcp_backend
from tests.fakes.faults import FaultProxy
from tests.kes_server import PKI, KesServer, eventually

pytestmark = pytest.mark.e2e

GO_DATA = Path(__file__).resolve().parent.parent / "data" / "go-kes"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def server_config(pki: PKI, keystore: str) -> str:
    return f"""admin:
  identity: {pki["admin"].identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
{keystore}"""


@dataclass
class Cloud:
    """One backend as the tests drive it: its config, raw access to the store, and faults."""

    kind: str
    keystore: str
    env: dict[str, str]
    secrets: tuple[str, ...]
    store: Any  # raw client
    proxy: FaultProxy | None = None
    fake: Any = None

    def put(self, name: str, value: bytes) -> None:
        """Write a value as Go KES would have (the bytes only, no metadata)."""
        if self.kind == "aws":
            self.store.create_secret(Name=name, SecretString=value.decode())
            return
        parent = f"projects/{gcp_backend.PROJECT}"
        automatic = {"replication": {"automatic": {}}}
        self.store.create_secret(request={"parent": parent, "secret_id": name, "secret": automatic})
        self.store.add_secret_version(
            request={"parent": f"{parent}/secrets/{name}", "payload": {"data": value}}
        )

    def read(self, name: str) -> bytes:
        if self.kind == "aws":
            return self.store.get_secret_value(SecretId=name)["SecretString"].encode()
        version = f"projects/{gcp_backend.PROJECT}/secrets/{name}/versions/1"
        return self.store.access_secret_version(request={"name": version}).payload.data

    def throttle(self, count: int) -> None:
        if self.kind == "aws":
            body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
            self.proxy.fail_next(count, 429, body, {"Content-Type": "application/x-amz-json-1.1"})
        else:
            self.fake.fail_next(count, 503, "UNAVAILABLE")

    def set_down(self, down: bool) -> None:
        (self.proxy if self.kind == "aws" else self.fake).down = down


@pytest.fixture(params=["aws", "gcp"])
def cloud(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    if request.param == "aws":
        moto = aws_backend.moto_server(tmp_path_factory)
        moto.reset()
        proxy = FaultProxy(moto.endpoint, moto.tls).start()
        raw = boto3.client(
            "secretsmanager",
            endpoint_url=moto.endpoint,
            region_name=aws_backend.REGION,
            aws_access_key_id="AKIAOPERATOR00000001",
            aws_secret_access_key="operator",
            verify=moto.tls.ca,
        )
        yield Cloud(
            "aws",
            aws_backend.section(proxy.endpoint),
            aws_backend.environment(),
            aws_backend.SECRETS,
            raw,
            proxy=proxy,
        )
        proxy.stop()
        return
    fake, account = gcp_backend.fake_secret_manager(tmp_path_factory)
    fake.reset()
    info = service_account_info(
        GCPKeystoreConfig(
            project_id=gcp_backend.PROJECT,
            client_email=account.client_email,
            client_id=account.client_id,
            private_key_id=account.private_key_id,
            private_key=account.private_key,
        )
    )
    raw = secretmanager_v1.SecretManagerServiceClient(
        credentials=service_account.Credentials.from_service_account_info(
            info, scopes=[CLOUD_PLATFORM]
        ),
        transport="rest",
        client_options=ClientOptions(api_endpoint=fake.endpoint),
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REQUESTS_CA_BUNDLE", fake.tls.ca)  # for the operator's client in the test
        yield Cloud(
            "gcp",
            gcp_backend.section(fake.endpoint, account),
            gcp_backend.environment(),
            gcp_backend.secrets_of(account),
            raw,
            fake=fake,
        )
    fake.down = False


def assert_no_secret_in(server: KesServer, cloud: Cloud, *values: bytes) -> None:
    text = server.text()
    for secret in cloud.secrets:
        assert secret not in text, f"{secret[:12]}… appears in the server output"
    for value in values:
        assert value.decode() not in text


def test_go_kes_bytes_both_ways_throttling_expiry_and_outage(cloud: Cloud, start_server, pki: PKI):
    written = {}
    for directory in ("keys", "legacy-keys"):
        for path in sorted((GO_DATA / directory).iterdir()):
            written[path.name] = path.read_bytes()
            cloud.put(path.name, path.read_bytes())
    server = start_server(server_config(pki, cloud.keystore), workers=1, env=cloud.env)
    client = server.client("admin")
    golden = json.loads((GO_DATA / "golden.json").read_text())
    for name, expected in golden["keys"].items():
        assert client.describe_key(name) == expected["describe"]
        message = base64.b64decode(expected["hmac"]["message"])
        assert client.hmac(name, message) == base64.b64decode(expected["hmac"]["hmac"])
    for case in golden["ciphertexts"]:
        plaintext = client.decrypt(
            case["key"], base64.b64decode(case["ciphertext"]), base64.b64decode(case["context"])
        )
        assert plaintext == base64.b64decode(case["plaintext"]), case
    for name in written:
        if name.startswith("legacy"):
            assert client.describe_key(name)["name"] == name
    client.create_key("made-by-kes-flask")
    stored = cloud.read("made-by-kes-flask")
    assert stored.startswith(b"CiQKI") and b"\n" not in stored  # base64 protobuf, nothing else
    version = KeyVersion.parse(stored)
    assert version.created_by == pki["admin"].identity
    assert base64.b64encode(base64.b64decode(stored)) == stored  # padded standard base64
    for name, value in written.items():  # Go values are never rewritten
        assert cloud.read(name) == value
    assert set(written) | {"made-by-kes-flask"} <= set(client.list_keys("*"))
    assert_no_secret_in(server, cloud, stored, *written.values())
    throttling_outage_and_recovery(server, cloud)


def throttling_outage_and_recovery(server: KesServer, cloud: Cloud) -> None:
    """Same server (a server start costs seconds): retries, renewal, an outage, recovery."""
    client = server.client("admin")
    client.create_key("cached")
    ciphertext = client.encrypt("cached", b"plaintext")  # now in the key cache
    cloud.throttle(1)
    client.create_key("after-throttling")
    cloud.throttle(1)
    assert client.describe_key("after-throttling")["name"] == "after-throttling"
    if cloud.kind == "gcp":  # every token so far expires: the server renews its own
        cloud.fake.expire_tokens()
        while time.time() < cloud.fake.not_before:  # the server's token predates the cut-off
            time.sleep(0.05)
        client.create_key("after-expiry")
        assert [s for _, p, s in cloud.fake.log if p.endswith("/secrets")][-2:] == [401, 200]
    cloud.set_down(True)
    assert eventually(lambda: client.status().get("keystore_unreachable")) is True
    assert client.send("GET", "/v1/ready").status == 504
    assert client.decrypt("cached", ciphertext) == b"plaintext"  # served from the cache
    with pytest.raises(KesServerError) as caught:
        client.create_key("during-outage")
    assert (caught.value.status, caught.value.message) == (502, "failed to create key")
    with pytest.raises(KesServerError) as caught:
        client.describe_key("never-cached")
    assert (caught.value.status, caught.value.message) == (502, "failed to read key")
    cloud.set_down(False)
    assert client.is_ready()
    client.create_key("after-outage")
    with pytest.raises(KesServerError) as caught:
        client.describe_key("never-cached")
    assert caught.value == ErrKeyNotFound
    assert_no_secret_in(server, cloud)
