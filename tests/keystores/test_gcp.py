"""The GCP Secret Manager keystore, its official client unpatched, against the HTTPS fake
(keystores.md §6)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager_v1
from google.oauth2 import service_account

from kes_flask.config import parse_config
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import GCPKeystoreConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
)
from kes_flask.keystore.gcp import GCPKeystore, probe_url, service_account_info
from tests.backends.gcp import PROJECT, ServiceAccount
from tests.fakes.gcp_secretmanager import CLOUD_PLATFORM, FakeSecretManager


def config(endpoint: str, account: ServiceAccount, **kwargs) -> GCPKeystoreConfig:
    return GCPKeystoreConfig(
        project_id=PROJECT,
        endpoint=endpoint,
        scopes=kwargs.pop("scopes", (CLOUD_PLATFORM,)),
        client_email=account.client_email,
        client_id=account.client_id,
        private_key_id=account.private_key_id,
        private_key=account.private_key.replace("\n", "\\n"),  # as written in YAML
        **kwargs,
    )


def operator_client(fake: FakeSecretManager, account: ServiceAccount):
    info = service_account_info(config(fake.endpoint, account))
    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=[CLOUD_PLATFORM]
    )
    return secretmanager_v1.SecretManagerServiceClient(
        credentials=credentials,
        transport="rest",
        client_options=ClientOptions(api_endpoint=fake.endpoint),
    )


def test_the_synthesized_service_account_is_go_kes_s(gcp):
    _, account = gcp
    info = service_account_info(config("", account))
    assert info is not None and info["private_key"] == account.private_key  # "\n" restored
    assert info["type"] == "service_account" and info["project_id"] == PROJECT
    assert info["token_uri"] == "https://accounts.google.com/o/oauth2/token"
    assert info["client_x509_cert_url"].endswith(
        "/kes-flask%40kes-flask-test.iam.gserviceaccount.com"
    )
    assert service_account_info(GCPKeystoreConfig(project_id=PROJECT)) is None  # ADC
    for missing, message in (
        ("client_email", "no client email"),
        ("client_id", "no client ID"),
        ("private_key", "no client private key provided"),
        ("private_key_id", "no client private key ID"),
    ):
        fields = {
            "client_email": "a@b",
            "client_id": "1",
            "private_key_id": "k",
            "private_key": "p",
            missing: "",
        }
        with pytest.raises(KeystoreError, match=f"^gcp: {message}"):
            service_account_info(GCPKeystoreConfig(project_id=PROJECT, **fields))
    assert probe_url("") == "https://secretmanager.googleapis.com"
    assert (
        probe_url("secretmanager.googleapis.com:443") == "https://secretmanager.googleapis.com:443"
    )


def test_a_bad_private_key_is_a_config_error_that_names_the_field(gcp):
    fake, account = gcp
    broken = ServiceAccount(account.client_email, account.client_id, account.private_key_id, "x")
    with pytest.raises(ConfigError, match=r"credentials\.private_key is not a PEM private key"):
        open_keystore(config(fake.endpoint, broken))


def test_create_get_delete_and_the_stored_layout(gcp):
    fake, account = gcp
    store = GCPKeystore(config(fake.endpoint, account))
    value = KeyVersion.generate(created_by="admin").encode()
    store.create("my-key", value)
    operator = operator_client(fake, account)
    secret = operator.get_secret(request={"name": f"projects/{PROJECT}/secrets/my-key"})
    assert secret.replication.automatic is not None and not secret.labels
    versions = list(operator.list_secret_versions(request={"parent": secret.name}))
    assert [v.name.rsplit("/", 1)[1] for v in versions] == ["1"]
    payload = operator.access_secret_version(request={"name": f"{secret.name}/versions/1"})
    assert payload.payload.data == value  # exactly the Go KES bytes
    assert store.get("my-key") == value
    with pytest.raises(KeyExistsError):
        store.create("my-key", b"other")
    assert store.get("my-key") == value
    store.delete("my-key")
    with pytest.raises(KeyNotFoundError):
        store.get("my-key")
    with pytest.raises(KeyNotFoundError):
        store.delete("my-key")  # GCP: deleting a missing key is KeyNotFound (spec §0.1)
    assert store.description == f"GCP SecretManager: Project={PROJECT}"


def test_go_written_secrets_are_read_from_version_1(gcp):
    fake, account = gcp
    operator = operator_client(fake, account)
    parent = f"projects/{PROJECT}"
    operator.create_secret(
        request={
            "parent": parent,
            "secret_id": "go-key",
            "secret": {"replication": {"automatic": {}}},
        }
    )
    for data in (b'{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}', b"newer"):
        operator.add_secret_version(
            request={"parent": f"{parent}/secrets/go-key", "payload": {"data": data}}
        )
    operator.create_secret(
        request={
            "parent": parent,
            "secret_id": "empty",
            "secret": {"replication": {"automatic": {}}},
        }
    )
    store = GCPKeystore(config(fake.endpoint, account))
    assert store.get("go-key").startswith(b'{"bytes":')  # version 1, never "latest"
    with pytest.raises(KeyNotFoundError):
        store.get("empty")  # a secret without versions (a half-finished create)
    with pytest.raises(KeyExistsError):
        store.create("empty", b"v")


def test_listing_pages_through_every_secret(gcp):
    fake, account = gcp
    fake.page_size = 4
    store = GCPKeystore(config(fake.endpoint, account))
    names = [f"k-{i:02d}" for i in range(10)]
    for name in names:
        store.create(name, b"v")
    assert store.list("") == (names, "")
    assert store.list("k-0", 3) == (["k-00", "k-01", "k-02"], "k-03")
    page_calls = [1 for m, p, s in fake.log if m == "GET" and p.endswith("/secrets")]
    assert len(page_calls) >= 6  # 3 pages per listing
    fake.page_size = 100


@pytest.mark.parametrize(("code", "status"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")])
def test_throttling_is_retried(gcp, code: int, status: str):
    fake, account = gcp
    store = GCPKeystore(config(fake.endpoint, account))
    fake.fail_next(2, code, status)
    store.create("throttled", b"CiQKvalue")
    fake.fail_next(2, code, status)
    assert store.get("throttled") == b"CiQKvalue"
    fake.fail_next(1, code, status)
    assert store.list("thr") == (["throttled"], "")
    statuses = [s for _, p, s in fake.log if p.endswith(":access")]
    assert statuses == [code, code, 200]


def test_expired_tokens_are_renewed_without_failing_the_request(gcp):
    fake, account = gcp
    store = GCPKeystore(config(fake.endpoint, account))
    store.create("renewed", b"v1")
    fake.expire_tokens()
    while time.time() < fake.not_before:
        time.sleep(0.05)
    assert store.get("renewed") == b"v1"
    assert [s for _, p, s in fake.log if p.endswith(":access")] == [401, 200]


def test_a_refused_account_is_an_error_not_an_outage(gcp):
    fake, _ = gcp
    stranger, _ = ServiceAccount.create("stranger")
    store = GCPKeystore(config(fake.endpoint, stranger))
    with pytest.raises(KeystoreError) as caught:
        store.get("k")
    assert not isinstance(caught.value, KeystoreUnreachableError | KeyNotFoundError)
    assert "401" in str(caught.value)


def test_status_and_an_unreachable_service(gcp, dead_port):
    fake, account = gcp
    assert 0 <= GCPKeystore(config(fake.endpoint, account)).status() < 30
    dead = GCPKeystore(config(f"https://127.0.0.1:{dead_port}", account))
    with pytest.raises(KeystoreUnreachableError):
        dead.status()
    started = time.monotonic()
    with pytest.raises(KeystoreUnreachableError):
        dead.get("k")
    assert time.monotonic() - started < 10  # a refused connection is not retried for long
    with pytest.raises(ConfigError, match="failed to connect to GCP SecretManager"):
        open_keystore(config(f"127.0.0.1:{dead_port}", account), probe=True)


def test_nothing_secret_reaches_the_logs(gcp, caplog: pytest.LogCaptureFixture):
    fake, account = gcp
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kes_flask")  # its level is INFO once an app ran
    store = GCPKeystore(config(fake.endpoint, account))
    store.create("logged", b"CiQKsecretvalue")
    store.get("logged")
    body = account.private_key.splitlines()[1]
    for secret in ("CiQKsecretvalue", "Q2lRS3NlY3JldHZhbHVl", body, "Bearer", "eyJ"):
        assert secret not in caplog.text


def test_the_documented_config_loads(gcp):
    """The YAML in docs/keystores/gcp.md is a working keystore section (nothing contacted)."""
    _, account = gcp
    doc = (Path(__file__).resolve().parents[2] / "docs" / "keystores" / "gcp.md").read_text()
    section = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\n" + section
    one_line = account.private_key.replace("\n", "\\n")  # as copied from the JSON key file
    gcp_config = parse_config(text, {"KES_GCP_PRIVATE_KEY": one_line}).keystore
    assert (gcp_config.project_id, gcp_config.endpoint) == ("my-project", "")
    assert gcp_config.client_email == "kes-flask@my-project.iam.gserviceaccount.com"
    store = open_keystore(gcp_config)
    assert store.description == "GCP SecretManager: Project=my-project"
    assert store.endpoint == "https://secretmanager.googleapis.com"
    store.close()


def test_application_default_credentials_when_the_config_has_none(gcp, tmp_path, monkeypatch):
    """No credentials in the config: Google's ADC chain (here GOOGLE_APPLICATION_CREDENTIALS)."""
    fake, account = gcp
    info = service_account_info(config(fake.endpoint, account))
    key_file = tmp_path / "kes-flask.json"
    key_file.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    store = GCPKeystore(GCPKeystoreConfig(project_id=PROJECT, endpoint=fake.endpoint))
    store.create("adc", b"CiQKadc")
    assert store.get("adc") == b"CiQKadc"
    assert [s for m, p, s in fake.log if p.endswith("/secrets")] == [200]
