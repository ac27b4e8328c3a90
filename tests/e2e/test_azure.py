"""kes-flask on Azure Key Vault: real gunicorn over real TLS, the official SDK against the fake.

Covers what the shared API suite cannot see: the exact stored representation, Go KES values
placed in the vault, throttling, an unreachable vault while cached keys keep working, the error
log naming the missing permission, and that no credential, token or key
material ever reaches the server's output.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("azure.keyvault.secrets")

from kes_flask.client import KesServerError
from kes_flask.crypto import KeyVersion
from tests.backends.azure import CLIENT_ID, CLIENT_SECRET, environment, fake_key_vault
from tests.backends.azure import keystore as azure_keystore
from tests.kes_server import PKI, KesServer, eventually

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parent.parent / "data"
GO_DATA = DATA / "go-kes"


def b64d(text: str) -> bytes:
    return base64.b64decode(text)


def azure_config(pki: PKI, section: str, extra: str = "") -> str:
    return f"""
admin:
  identity: {pki["admin"].identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
cache:
  expiry:
    any: 5m
    unused: 5m
{section}
{extra}
"""


@pytest.fixture(scope="module")
def azure(tmp_path_factory, pki):
    """One kes-flask server on the session's fake for this module (a server start is costly)."""
    section = azure_keystore(tmp_path_factory)
    fake = fake_key_vault(tmp_path_factory)
    config = azure_config(pki, section, "keys:\n  - name: predefined-key\n")
    server = KesServer(
        tmp_path_factory.mktemp("kes-azure"), pki, config, workers=1, env=environment(fake)
    )
    try:
        yield fake, server.start()
    finally:
        server.stop()
        fake.stop()
        fake.start(fake.port)  # the session's fake outlives this module, whatever it did to it


def stored_values(fake) -> list[str]:
    return [v.value for s in fake.secrets.values() for v in s.versions]


def test_keys_on_azure_end_to_end(azure):
    fake, server = azure
    client = server.client("admin")
    assert "Azure KeyVault: " + fake.vault_url in server.text()
    assert "predefined-key" in client.list_keys("*")
    client.create_key("my-key")
    dek = client.generate_key("my-key", b"ctx")
    assert client.decrypt("my-key", dek.ciphertext, b"ctx") == dek.plaintext
    client.import_key("imported", bytes(range(32)), "ChaCha20")
    assert client.describe_key("imported")["algorithm"] == "ChaCha20"
    with pytest.raises(KesServerError) as info:
        client.create_key("my-key")
    assert (info.value.status, info.value.message) == (400, "key already exists")
    # Exactly Go KES's representation: a bare value, no content type, no tags, api-version 7.5.
    puts = [e for e in fake.requests_for("PUT", "/secrets/") if e.status == 200]
    assert {tuple(e.body) for e in puts} == {("value",)}
    assert all(e.query == {"api-version": "7.5"} for e in puts)
    for value in stored_values(fake):
        KeyVersion.parse(value.encode())
        assert value.startswith("CiQKI")  # base64 of the protobuf KeyVersion
    client.delete_key("my-key")
    assert fake.secrets.get("my-key") is None or fake.secrets["my-key"].state == "purging"
    with pytest.raises(KesServerError) as info:
        client.describe_key("my-key")
    assert info.value.status == 404
    client.create_key("my-key")  # the name is free again after the purge
    client.delete_key("never-created")  # Azure: deleting a missing key succeeds
    with pytest.raises(KesServerError) as info:
        client.create_key("has_underscore")
    assert info.value.status == 400 and "cannot be stored in Azure Key Vault" in info.value.message
    assert not fake.requests_for("PUT", "/secrets/has_underscore")


def test_go_kes_values_in_the_vault_are_served(azure):
    fake, server = azure
    golden = json.loads((GO_DATA / "golden.json").read_text())
    for path in (GO_DATA / "keys").iterdir():
        fake.place(path.name, path.read_text())
    fake.place("go-aes", "a later version someone else wrote", created=4_000_000_000)
    client = server.client("admin")
    for name, expected in golden["keys"].items():
        assert client.describe_key(name) == expected["describe"]
        message = b64d(expected["hmac"]["message"])
        assert client.hmac(name, message) == b64d(expected["hmac"]["hmac"])
    for case in golden["ciphertexts"]:
        plaintext = client.decrypt(case["key"], b64d(case["ciphertext"]), b64d(case["context"]))
        assert plaintext == b64d(case["plaintext"]), case
    for path in (GO_DATA / "legacy-keys").iterdir():
        fake.place(path.name, path.read_text())
        assert client.describe_key(path.name)["name"] == path.name


def test_throttling_permissions_and_an_unreachable_vault(azure):
    fake, server = azure
    client = server.client("admin")
    client.create_key("cached")
    client.create_key("uncached")
    client.create_key("cached-later")
    fake.fail_next(3, 429, retry_after="0")
    fake.fail_next(1, 503, retry_after="0")
    dek = client.generate_key("cached")  # throttled four times, retried, served
    assert [e.status for e in fake.log].count(429) == 3
    fake.entra.apps[CLIENT_ID].permissions.discard("purge")
    with pytest.raises(KesServerError) as info:
        client.delete_key("uncached")
    assert (info.value.status, info.value.message) == (502, "failed to delete key")
    server.wait_for("secret permission 'Purge'")
    fake.entra.apps[CLIENT_ID].permissions.add("purge")
    assert client.status()["keystore_latency"] >= 1
    fake.entra.revoke_all()  # continuous access evaluation: a fresh token, the request still works
    assert client.describe_key("cached-later")["name"] == "cached-later"
    fake.stop()
    assert eventually(lambda: client.status().get("keystore_unreachable")) is True
    response = client.send("GET", "/v1/ready")
    assert response.status == 504
    assert json.loads(response.body) == {"message": "key store is not reachable"}
    assert client.decrypt("cached", dek.ciphertext) == dek.plaintext  # the cache still serves it
    with pytest.raises(KesServerError) as info:
        client.describe_key("predefined-key")
    assert (info.value.status, info.value.message) == (502, "failed to read key")
    with pytest.raises(KesServerError) as info:
        client.list_keys("*")
    assert (info.value.status, info.value.message) == (502, "failed to list keys")
    fake.start(fake.port)
    # Readiness comes back with the next keystore probe (every few seconds), not at once.
    deadline = time.monotonic() + 60
    while not client.is_ready():
        assert time.monotonic() < deadline, "the server did not become ready again"
        time.sleep(0.2)
    # Nothing secret in anything the server printed: credentials, tokens, key material.
    output = server.text()
    assert "cannot reach" in output
    assert "Request URL" not in output  # the SDK's per-request INFO logging is kept quiet
    secrets = [CLIENT_SECRET, *fake.entra.issued, *stored_values(fake)]
    secrets += [base64.b64encode(dek.plaintext).decode(), dek.plaintext.hex()]
    for secret in secrets:
        assert secret not in output
