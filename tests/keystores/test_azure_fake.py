"""The Azure Key Vault fake against the official clients: it must behave like the service.

Only documented settings point the SDK at the fake: ``AZURE_AUTHORITY_HOST`` (azure-identity),
``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` (App Service managed identity), ``REQUESTS_CA_BUNDLE``
(requests, under azure-core's transport) and the client's ``vault_url``.
"""

from __future__ import annotations

import time

import pytest
import requests

pytest.importorskip("azure.keyvault.secrets")

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from tests.fakes.azure_keyvault import FakeKeyVault

CLIENT_ID = "c3b7badf-cd2b-4297-bece-4de5f2e575f6"
CLIENT_SECRET = "fake-client-secret-" + "x" * 12


@pytest.fixture
def fake(tmp_path, monkeypatch):
    vault = FakeKeyVault(tmp_path / "azure").start()
    vault.entra.add_app(CLIENT_ID, CLIENT_SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", vault.ca_file)
    yield vault
    vault.stop()


def client(fake: FakeKeyVault, secret: str = CLIENT_SECRET, **options) -> SecretClient:
    credential = ClientSecretCredential(
        fake.tenant, CLIENT_ID, secret, authority=fake.authority, disable_instance_discovery=True
    )
    options.setdefault("api_version", "7.5")
    return SecretClient(fake.vault_url, credential, retry_backoff_factor=0.01, **options)


def inner_code(err: HttpResponseError) -> str:
    return err.error.innererror["code"]


def test_challenge_then_bearer_token(fake):
    secrets = client(fake)
    secrets.set_secret("first", "value")
    first, second = fake.log[0], fake.log[-1]
    assert (first.method, first.status, first.principal, first.body) == ("PUT", 401, "", None)
    assert (second.method, second.status, second.principal) == ("PUT", 200, CLIENT_ID)
    assert second.body == {"value": "value"}
    assert all(entry.query["api-version"] == "7.5" for entry in fake.log if "secrets" in entry.path)
    reply = requests.get(fake.vault_url + "/secrets?api-version=7.5", timeout=10)
    assert reply.status_code == 401
    challenge = reply.headers["WWW-Authenticate"]
    assert (
        challenge == f'Bearer authorization="{fake.base}/{fake.tenant}", resource="{fake.resource}"'
    )


def test_versions_and_listings_page_with_next_link(fake):
    secrets = client(fake)
    for index in range(30):
        secrets.set_secret("many", f"v{index}")
        fake.place(f"other-{index:02d}", "x")
    pages = secrets.list_properties_of_secret_versions("many").by_page()
    assert len(list(next(pages))) == 25
    assert pages.continuation_token.startswith(f"{fake.base}/secrets/many/versions?")
    assert len(list(secrets.list_properties_of_secret_versions("many"))) == 30
    names = [item.name for item in secrets.list_properties_of_secrets()]
    assert sorted(names) == sorted(["many"] + [f"other-{i:02d}" for i in range(30)])
    assert len(fake.requests_for("GET", "/secrets")) >= 4  # two pages each, after the challenge
    assert secrets.get_secret("MANY").value == "v29"  # names are case-insensitive
    oldest = min(secrets.list_properties_of_secret_versions("many"), key=lambda v: v.created_on)
    assert secrets.get_secret("many", oldest.version).value in {f"v{i}" for i in range(30)}
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("missing")
    assert list(secrets.list_properties_of_secret_versions("missing")) == []


def test_soft_delete_and_purge_state_machine(fake):
    secrets = client(fake)
    secrets.set_secret("gone", "value")
    assert secrets.begin_delete_secret("gone").result().recovery_id.endswith("/deletedsecrets/gone")
    with pytest.raises(ResourceExistsError) as info:
        secrets.set_secret("gone", "again")  # deletion still in progress
    assert (info.value.status_code, inner_code(info.value)) == (409, "ObjectIsBeingDeleted")
    assert secrets.get_deleted_secret("gone").name == "gone"
    with pytest.raises(ResourceExistsError) as info:
        secrets.set_secret("gone", "again")
    assert inner_code(info.value) == "ObjectIsDeletedButRecoverable"
    assert "deleted but recoverable state" in info.value.message
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("gone")
    assert "gone" not in [item.name for item in secrets.list_properties_of_secrets()]
    secrets.purge_deleted_secret("gone")
    with pytest.raises(ResourceExistsError) as info:
        secrets.set_secret("gone", "again")  # purge still in progress
    assert inner_code(info.value) == "ObjectIsBeingDeleted"
    secrets.set_secret("gone", "again")
    assert [v.enabled for v in secrets.list_properties_of_secret_versions("gone")] == [True]
    with pytest.raises(ResourceNotFoundError):
        secrets.begin_delete_secret("never-existed")


def test_throttling_is_retried_after_retry_after(fake):
    secrets = client(fake)
    secrets.set_secret("busy", "value")
    fake.fail_next(1, 429, retry_after="1")
    fake.fail_next(1, 503, retry_after="0")
    started = time.monotonic()
    assert secrets.get_secret("busy").value == "value"
    assert time.monotonic() - started >= 0.9  # the SDK waited as Retry-After asked
    assert [e.status for e in fake.requests_for("GET", "/secrets/busy")] == [429, 503, 200]


def test_tokens_really_expire_and_are_replaced(fake):
    fake.entra.token_lifetime = 1
    secrets = client(fake)
    secrets.set_secret("short", "value")
    first = fake.entra.issued[-1]
    deadline = time.monotonic() + 30
    while not fake.entra.expired(first):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stale = requests.get(
        fake.vault_url + "/secrets/short/?api-version=7.5",
        headers={"Authorization": f"Bearer {first}"},
        timeout=10,
    )
    assert stale.status_code == 401 and "WWW-Authenticate" in stale.headers
    assert secrets.get_secret("short").value == "value"
    assert fake.entra.issued[-1] != first


def test_revoked_tokens_get_a_claims_challenge(fake):
    secrets = client(fake)
    secrets.set_secret("cae", "value")
    issued = len(fake.entra.issued)
    fake.entra.revoke_all()
    assert secrets.get_secret("cae").value == "value"
    assert len(fake.entra.issued) == issued + 1
    statuses = [e.status for e in fake.requests_for("GET", "/secrets/cae")]
    assert statuses == [401, 200]


def test_wrong_client_secret_is_refused(fake):
    with pytest.raises(ClientAuthenticationError) as info:
        client(fake, secret="wrong").get_secret("any")
    assert "AADSTS7000215" in str(info.value)


def test_managed_identity_endpoint(fake, monkeypatch):
    fake.entra.add_managed_identity("mi-client-id")
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
    credential = ManagedIdentityCredential(client_id="mi-client-id")
    secrets = SecretClient(fake.vault_url, credential, api_version="7.5")
    secrets.set_secret("mi", "value")
    assert fake.log[-1].principal == "mi-client-id"
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(client_id="mi-client-id").get_token(fake.resource + "/.default")


@pytest.mark.parametrize(
    ("mode", "code", "needle"),
    [
        ("policy", "ForbiddenByPolicy", "does not have secrets get permission"),
        ("rbac", "ForbiddenByRbac", "Microsoft.KeyVault/vaults/secrets/getSecret/action"),
    ],
)
def test_missing_permissions(fake, mode, code, needle):
    fake.authorization = mode
    fake.entra.apps[CLIENT_ID].permissions.discard("get")
    secrets = client(fake)
    secrets.set_secret("p", "value")  # Set is still granted
    with pytest.raises(HttpResponseError) as info:
        secrets.get_secret("p")
    assert (info.value.status_code, inner_code(info.value)) == (403, code)
    assert needle in info.value.message


def test_names_and_api_version_are_checked(fake):
    with pytest.raises(HttpResponseError) as info:
        client(fake).set_secret("has_underscore", "value")
    assert info.value.status_code == 400 and "invalid name" in info.value.message
    with pytest.raises(HttpResponseError) as info:
        client(fake, api_version="7.4").get_secret("x")
    assert info.value.status_code == 400 and "7.4" in info.value.message


def test_disabled_versions_are_not_readable(fake):
    fake.place("off", "value", enabled=False)
    with pytest.raises(HttpResponseError) as info:
        client(fake).get_secret("off")
    assert (info.value.status_code, inner_code(info.value)) == (403, "SecretDisabled")
