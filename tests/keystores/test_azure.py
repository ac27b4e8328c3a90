"""The Azure Key Vault keystore over the HTTPS fake, with the official SDK unpatched.

The SDK finds the fake through its own documented settings: ``AZURE_AUTHORITY_HOST`` for
Entra ID, ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` for managed identity, ``REQUESTS_CA_BUNDLE`` for
the fake's CA, and the configured ``endpoint``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("azure.keyvault.secrets")

from kes_flask.config.errors import ConfigError
from kes_flask.config.model import AzureKeystoreConfig, CacheConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.azure import AzureKeystore
from kes_flask.keystore.base import (
    InvalidKeyNameError,
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
)
from kes_flask.keystore.cache import KeyCache
from tests.fakes.azure_keyvault import FakeKeyVault

GO_DATA = Path(__file__).resolve().parent.parent / "data" / "go-kes"
CLIENT_ID = "c3b7badf-cd2b-4297-bece-4de5f2e575f6"
CLIENT_SECRET = "-.j4XP6Sa7E39.KWn-SL~Dgbz~H-H-TPxT-fake"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    vault = FakeKeyVault(tmp_path / "azure").start()
    vault.entra.add_app(CLIENT_ID, CLIENT_SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", vault.ca_file)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", vault.authority)
    yield vault
    vault.stop()


def keystore(fake: FakeKeyVault, **config) -> AzureKeystore:
    config.setdefault("auth", "credentials")
    if config["auth"] == "credentials":
        config.setdefault("tenant_id", fake.tenant)
        config.setdefault("client_id", CLIENT_ID)
        config.setdefault("client_secret", CLIENT_SECRET)
    return AzureKeystore(AzureKeystoreConfig(endpoint=fake.vault_url, **config))


@pytest.fixture
def store(fake):
    azure = keystore(fake)
    yield azure
    azure.close()


def test_created_keys_are_stored_exactly_as_go_kes_stores_them(fake, store):
    value = KeyVersion.generate(created_by="admin").encode()
    store.create("my-key", value)
    puts = [e for e in fake.requests_for("PUT", "/secrets/my-key") if e.status == 200]
    assert [e.body for e in puts] == [{"value": value.decode()}]  # no contentType, tags, attributes
    assert fake.requests_for("PUT")[-1].query == {"api-version": "7.5"}
    version = fake.secrets["my-key"].versions[0]
    assert (version.value, version.content_type, version.tags) == (value.decode(), None, None)
    assert store.get("my-key") == value
    with pytest.raises(KeyExistsError):
        store.create("my-key", value)
    assert store.description == f"Azure KeyVault: {fake.vault_url}"


def test_go_written_values_are_served_unchanged(fake, store):
    for directory in ("keys", "legacy-keys"):
        for path in sorted((GO_DATA / directory).iterdir()):
            fake.place(path.name, path.read_text())
            assert store.get(path.name) == path.read_bytes()
            KeyVersion.parse(store.get(path.name))  # a valid key in either format


def test_reads_take_the_oldest_version(fake, store):
    fake.place("k", "newest", created=3_000)
    fake.place("k", "oldest", created=1_000)
    fake.place("k", "middle", created=2_000)
    assert store.get("k") == b"oldest"
    fake.place("too-many", "first", created=1)
    for index in range(25):
        fake.place("too-many", f"later-{index}", created=100 + index)
    with pytest.raises(KeystoreError, match=r"too many versions .*TooManyObjectVersions"):
        store.get("too-many")


def test_unusable_oldest_versions_are_errors(fake, store):
    fake.place("off", "v", enabled=False)
    with pytest.raises(KeystoreError, match="disabled") as info:
        store.get("off")
    assert not isinstance(info.value, KeyNotFoundError)
    fake.place("old", "v", exp=int(time.time()) - 60)
    with pytest.raises(KeystoreError, match="expired"):
        store.get("old")
    fake.place("later", "v", nbf=int(time.time()) + 3600)
    with pytest.raises(KeystoreError, match="activation"):
        store.get("later")


def test_missing_keys(store):
    with pytest.raises(KeyNotFoundError):
        store.get("missing")
    store.delete("missing")  # deleting a missing key succeeds, as in Go KES


def test_delete_soft_deletes_and_purges_with_retries(fake, store):
    fake.transition_requests = 2  # Key Vault takes a while to finish the soft delete
    store.create("gone", b"v")
    store.delete("gone")
    purges = [e.status for e in fake.requests_for("DELETE", "/deletedsecrets/gone")]
    assert purges == [409, 409, 204]
    with pytest.raises(KeyNotFoundError):
        store.get("gone")
    store.create("gone", b"again")  # the purge freed the name (after one more 409)
    assert store.get("gone") == b"again"


def test_create_purges_a_soft_deleted_name_then_retries(fake, store):
    fake.place("recycled", "old")
    fake.secrets["recycled"].state = "deleted"  # soft-deleted by someone else, not purged
    store.create("recycled", b"new")
    assert store.get("recycled") == b"new"
    paths = ("/secrets/recycled/", "/secrets/recycled", "/deletedsecrets/recycled")
    statuses = [(e.method, e.status) for e in fake.log if e.path in paths and e.status != 401]
    assert statuses == [("GET", 404), ("PUT", 409), ("DELETE", 204), ("PUT", 409), ("PUT", 200)]


def test_soft_deleted_name_without_purge_permission(fake, store):
    fake.entra.apps[CLIENT_ID].permissions.discard("purge")
    fake.place("held", "old")
    fake.secrets["held"].state = "deleted"
    with pytest.raises(KeystoreError) as info:
        store.create("held", b"new")
    assert "failed to purge deleted secret: insufficient permissions" in str(info.value)
    assert "'Purge'" in str(info.value)


def test_listing_pages_through_the_whole_vault(fake, store):
    names = [f"key-{index:03d}" for index in range(60)] + ["Other-Secret"]
    for name in names:
        fake.place(name, "v")
    fake.place("deleted-one", "v")
    fake.secrets["deleted-one"].state = "deleted"
    assert store.list("") == (sorted(names), "")
    assert store.list("key-05") == ([f"key-05{i}" for i in range(10)], "")
    assert store.list("", 10) == (sorted(names)[:10], sorted(names)[10])
    assert len([e for e in fake.requests_for("GET", "/secrets") if e.path == "/secrets"]) >= 3


@pytest.mark.parametrize("name", ["has_underscore", "dot.ted", "x" * 128, ""])
def test_names_azure_refuses_are_rejected_before_any_call(fake, store, name):
    before = len(fake.log)
    for operation in (lambda: store.create(name, b"v"), lambda: store.get(name)):
        with pytest.raises(InvalidKeyNameError, match="0-9, a-z, A-Z and '-'"):
            operation()
    with pytest.raises(InvalidKeyNameError):
        store.delete(name)
    assert len(fake.log) == before


@pytest.mark.parametrize(
    ("mode", "permission", "operation"),
    [
        ("policy", "get", lambda s: s.get("k")),
        ("policy", "list", lambda s: s.get("k")),
        ("policy", "list", lambda s: s.list("")),
        ("policy", "get", lambda s: s.create("new", b"v")),
        ("policy", "set", lambda s: s.create("new", b"v")),
        ("policy", "delete", lambda s: s.delete("k")),
        ("policy", "purge", lambda s: s.delete("k")),
        ("rbac", "get", lambda s: s.get("k")),
        ("rbac", "set", lambda s: s.create("new", b"v")),
        ("rbac", "purge", lambda s: s.delete("k")),
    ],
)
def test_forbidden_names_the_missing_permission(fake, store, mode, permission, operation):
    fake.place("k", "v")
    fake.authorization = mode
    fake.entra.apps[CLIENT_ID].permissions.discard(permission)
    with pytest.raises(KeystoreError) as info:
        operation(store)
    message = str(info.value)
    assert "insufficient permissions" in message
    assert f"secret permission '{permission.capitalize()}'" in message
    assert "Key Vault Secrets Officer" in message
    assert ("ForbiddenByRbac" if mode == "rbac" else "ForbiddenByPolicy") in message


def test_throttling_is_retried_without_failing(fake, store):
    store.create("busy", b"v")
    fake.fail_next(2, 429, retry_after="0")
    fake.fail_next(1, 503, retry_after="0")
    assert store.get("busy") == b"v"
    fake.fail_next(3, 429, retry_after="0")
    assert store.list("") == (["busy"], "")
    assert [e.status for e in fake.log].count(429) == 5


def test_expired_and_revoked_tokens_are_replaced(fake, store):
    fake.entra.token_lifetime = 1
    store.create("t", b"v")
    first = fake.entra.issued[-1]
    deadline = time.monotonic() + 30
    while not fake.entra.expired(first):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert store.get("t") == b"v"
    fake.entra.token_lifetime = 3600
    assert store.get("t") == b"v"
    fake.entra.revoke_all()  # continuous access evaluation: the vault demands a fresh token
    assert store.get("t") == b"v"
    assert len(set(fake.entra.issued)) >= 3


def test_wrong_client_secret_says_what_to_check(fake):
    azure = keystore(fake, client_secret="not-the-secret")
    with pytest.raises(KeystoreError) as info:
        azure.get("k")
    message = str(info.value)
    assert "cannot sign in to Entra ID" in message and "AADSTS7000215" in message
    assert "keystore.azure.keyvault.credentials" in message
    assert "not-the-secret" not in message


def test_managed_identity(fake, monkeypatch):
    fake.entra.add_managed_identity("mi-client")
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake.identity_header)
    azure = keystore(fake, auth="managed_identity", managed_identity_client_id="mi-client")
    azure.create("mi-key", b"v")
    assert azure.get("mi-key") == b"v"
    assert {e.principal for e in fake.log if e.principal} == {"mi-client"}


def test_default_chain_uses_the_environment(fake, monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", fake.tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    azure = keystore(fake, auth="default")
    azure.create("chain", b"v")
    assert azure.get("chain") == b"v"
    assert {e.principal for e in fake.log if e.principal} == {CLIENT_ID}


def test_unreachable_vault_while_the_cache_serves_cached_keys(fake, store):
    version = KeyVersion.generate(created_by="admin")
    store.create("cached", version.encode())
    store.create("uncached", KeyVersion.generate(created_by="admin").encode())
    assert store.status() > 0
    cache = KeyCache(store, CacheConfig(expiry_offline=3600 * 10**9))
    assert cache.get("cached").encode() == version.encode()
    fake.stop()
    with pytest.raises(KeystoreUnreachableError, match="not reachable"):
        store.status()
    cache.probe()
    assert cache.offline
    with pytest.raises(KeystoreUnreachableError):
        cache.status()
    assert cache.get("cached").encode() == version.encode()  # still served
    for operation in (lambda: cache.get("uncached"), lambda: store.list("")):
        with pytest.raises(KeystoreUnreachableError, match="cannot reach"):
            operation()
    fake.start(fake.port)
    cache.probe()
    assert not cache.offline and cache.get("uncached")


def test_missing_extra_names_the_pip_command():
    script = (
        "import sys; sys.modules['azure.keyvault.secrets'] = None\n"
        "from kes_flask.config.model import AzureKeystoreConfig\n"
        "from kes_flask.keystore import open_keystore\n"
        "try:\n"
        "    open_keystore(AzureKeystoreConfig(endpoint='https://x.vault.azure.net'))\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("ConfigError keystore Azure Key Vault")
    assert "run pip install 'kes-flask[azure]'" in result.stdout


def test_open_keystore_connects_without_contacting_azure(fake):
    store = open_keystore(
        AzureKeystoreConfig(
            endpoint="https://kes-test-1.vault.azure.net",
            tenant_id="t",
            client_id="c",
            client_secret="s",
            auth="credentials",
        )
    )
    store.close()
    assert fake.log == []


def test_no_secret_reaches_any_log_even_at_debug(fake, caplog):
    azure = keystore(fake)  # quiets the SDK's loggers; an operator may turn them up again
    wrong = keystore(fake, client_secret="wrong-" + CLIENT_SECRET)
    for name in ("", "azure", "msal", "kes_flask"):  # kes_flask is at INFO once an app ran
        caplog.set_level(logging.DEBUG, logger=name)
    value = KeyVersion.generate(created_by="admin").encode()
    azure.create("logged", value)
    assert azure.get("logged") == value
    fake.fail_next(1, 429)
    azure.list("")
    azure.delete("logged")
    fake.entra.apps[CLIENT_ID].permissions.discard("get")
    with pytest.raises(KeystoreError):
        azure.get("other")
    with pytest.raises(KeystoreError):
        wrong.get("x")
    azure.close()
    text = caplog.text
    assert "logged" in text  # the SDK did log its requests
    for secret in [CLIENT_SECRET, value.decode(), *fake.entra.issued]:
        assert secret not in text


def test_the_documented_config_loads():
    """The YAML in docs/keystores/azure.md is a working keystore section."""
    from kes_flask.config import parse_config

    doc = (Path(__file__).resolve().parents[2] / "docs" / "keystores" / "azure.md").read_text()
    section = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\n" + section
    config = parse_config(text, {"KES_AZURE_SECRET": "from-the-environment"})
    azure = config.keystore
    assert (azure.auth, azure.client_secret) == ("credentials", "from-the-environment")
    assert azure.endpoint == "https://my-vault.vault.azure.net"


def test_seed_003_config_connects_without_contacting_azure(fake):
    """Seed 003's first config, placeholders filled, loads and connects; Azure is not called."""
    from kes_flask.config import parse_config

    text = (Path(__file__).resolve().parents[1] / "data/config/seeds/003-azure.yml").read_text()
    for field, value in (("tenant_id", fake.tenant), ("client_id", CLIENT_ID)):
        text = text.replace(f'{field}: ""', f'{field}: "{value}"')
    text = text.replace('client_secret: ""', f'client_secret: "{CLIENT_SECRET}"')
    config = parse_config(text, {})
    azure = open_keystore(config.keystore, probe=True)
    assert azure.description == "Azure KeyVault: https://kes-test-1.vault.azure.net"
    azure.close()
    assert fake.log == []


@pytest.mark.parametrize(
    "endpoint", ["http://my-vault.vault.azure.net", "my-vault.vault.azure.net", "https://"]
)
def test_an_endpoint_that_cannot_work_stops_start_up(endpoint):
    with pytest.raises(ConfigError) as info:
        open_keystore(AzureKeystoreConfig(endpoint=endpoint))
    assert f"invalid Azure Key Vault endpoint '{endpoint}'" in str(info.value)
    assert "keystore.azure.keyvault.endpoint" in str(info.value)
