"""The AWS Secrets Manager keystore against a real moto server over HTTPS (keystores.md §5)."""

from __future__ import annotations

import base64
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from kes_flask.config import parse_config
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import AWSKeystoreConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.aws import AWSKeystore, endpoint_url
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
)
from tests.backends.aws import REGION
from tests.fakes.faults import FaultProxy
from tests.fakes.moto import MotoServer

SECRET = "kes-flask-test-secret-key-do-not-log"
TOKEN = "kes-flask-test-session-token-do-not-log"


def config(endpoint: str, kms_key: str = "") -> AWSKeystoreConfig:
    return AWSKeystoreConfig(
        endpoint=endpoint,
        region=REGION,
        kms_key=kms_key,
        access_key="AKIAKESFLASKTEST0001",
        secret_key=SECRET,
        session_token=TOKEN,
    )


def direct(moto: MotoServer):
    """boto3 used as an operator would, to look at what is really stored."""
    return boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="AKIAOTHERCLIENT00001",
        aws_secret_access_key="other",
    )


def test_endpoint_without_scheme_gets_https():
    assert endpoint_url("secretsmanager.us-east-2.amazonaws.com") == (
        "https://secretsmanager.us-east-2.amazonaws.com"
    )
    assert endpoint_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_create_get_delete_and_the_stored_representation(moto: MotoServer):
    store = AWSKeystore(config(moto.endpoint))
    value = KeyVersion.generate(created_by="admin").encode()
    store.create("my-key", value)
    stored = direct(moto).get_secret_value(SecretId="my-key")
    assert stored["SecretString"] == value.decode()  # exactly the Go KES text, nothing added
    assert "SecretBinary" not in stored
    described = direct(moto).describe_secret(SecretId="my-key")
    assert not described.get("Tags") and not described.get("Description")
    assert "KmsKeyId" not in described
    assert store.get("my-key") == value
    with pytest.raises(KeyExistsError):
        store.create("my-key", b"other")
    assert store.get("my-key") == value
    store.delete("my-key")
    with pytest.raises(KeyNotFoundError):
        store.get("my-key")
    # Deleted without a recovery window: the name is free again at once.
    store.create("my-key", b"again")
    assert store.get("my-key") == b"again"
    store.delete("never-existed")  # a forced delete of a missing secret succeeds (spec §0.1)
    assert store.description == f"AWS SecretsManager: {moto.endpoint}"


def test_new_secrets_use_the_configured_kms_key(moto: MotoServer):
    kms = boto3.client(
        "kms",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    key_id = kms.create_key(Description="kes")["KeyMetadata"]["KeyId"]
    store = AWSKeystore(config(moto.endpoint, kms_key=key_id))
    store.create("with-kms", b"CiQKvalue")
    assert direct(moto).describe_secret(SecretId="with-kms")["KmsKeyId"] == key_id
    assert store.get("with-kms") == b"CiQKvalue"


def test_go_written_values_are_read_including_secret_binary(moto: MotoServer):
    legacy = json.dumps({"bytes": base64.b64encode(bytes(32)).decode()}).encode()
    client = direct(moto)
    client.create_secret(Name="go-string", SecretString="CiQKIAAAAA==")
    client.create_secret(Name="go-binary", SecretBinary=legacy)
    store = AWSKeystore(config(moto.endpoint))
    assert store.get("go-string") == b"CiQKIAAAAA=="
    assert store.get("go-binary") == legacy


def test_listing_pages_through_every_secret(moto: MotoServer):
    store = AWSKeystore(config(moto.endpoint))
    names = [f"k-{i:03d}" for i in range(101)]  # moto pages ListSecrets by 100
    with ThreadPoolExecutor(8) as pool:  # moto answers one request per TLS connection: slow
        list(pool.map(lambda name: store.create(name, b"v"), names))
    direct(moto).create_secret(Name="not-from-kes", SecretString="x")
    assert store.list("") == ([*names, "not-from-kes"], "")
    assert store.list("k-09", 5) == (["k-090", "k-091", "k-092", "k-093", "k-094"], "k-095")


def test_status_measures_the_endpoint_and_reports_unreachable(moto: MotoServer, dead_port: int):
    assert 0 <= AWSKeystore(config(moto.endpoint)).status() < 30
    dead = AWSKeystore(config(f"https://127.0.0.1:{dead_port}"))
    with pytest.raises(KeystoreUnreachableError):
        dead.status()
    with pytest.raises(ConfigError, match="failed to connect to AWS SecretsManager"):
        open_keystore(config(f"127.0.0.1:{dead_port}"), probe=True)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, b'{"__type":"ThrottlingException","message":"Rate exceeded"}'),
        (503, b'{"__type":"ServiceUnavailable","message":"try again"}'),
    ],
)
def test_throttling_is_retried(moto: MotoServer, status: int, body: bytes):
    proxy = FaultProxy(moto.endpoint, moto.tls).start()
    try:
        store = AWSKeystore(config(proxy.endpoint))
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        proxy.fail_next(1, status, body, headers)
        store.create("throttled", b"CiQKvalue")
        proxy.fail_next(1, status, body, headers)
        assert store.get("throttled") == b"CiQKvalue"
        statuses = [s for _, target, s in proxy.requests if target.endswith("GetSecretValue")]
        assert statuses == [status, 200]
    finally:
        proxy.stop()


def test_credentials_never_reach_the_logs(moto: MotoServer, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kes_flask")  # its level is INFO once an app ran
    store = AWSKeystore(config(moto.endpoint))
    store.create("logged", b"CiQKsecretvalue")
    store.get("logged")
    with pytest.raises(KeyNotFoundError):
        store.get("missing")
    text = caplog.text
    assert caplog.records  # botocore does log at DEBUG
    for secret in (SECRET, TOKEN, "CiQKsecretvalue"):
        assert secret not in text


def test_the_documented_config_loads():
    """The YAML in docs/keystores/aws.md is a working keystore section (nothing contacted)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "keystores" / "aws.md").read_text()
    section = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\n" + section
    env = {"AWS_KES_ACCESS_KEY": "AKIADOC", "AWS_KES_SECRET_KEY": "from-the-environment"}
    aws = parse_config(text, env).keystore
    assert (aws.endpoint, aws.region, aws.kms_key) == (
        "secretsmanager.us-east-2.amazonaws.com",
        "us-east-2",
        "",
    )
    assert (aws.access_key, aws.secret_key, aws.session_token) == (
        "AKIADOC",
        "from-the-environment",
        "",
    )
    store = open_keystore(aws)
    assert store.endpoint == "https://secretsmanager.us-east-2.amazonaws.com"
    store.close()


def test_the_default_credential_chain_when_the_config_has_none(
    moto: MotoServer, monkeypatch, tmp_path
):
    plain = AWSKeystoreConfig(endpoint=moto.endpoint, region=REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role here
    with pytest.raises(KeystoreError, match=r"no AWS credentials found: set keystore\.aws"):
        AWSKeystore(plain).get("k")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    store = AWSKeystore(plain)
    store.create("chain", b"CiQKchain")
    assert store.get("chain") == b"CiQKchain"
