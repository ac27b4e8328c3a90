"""Go KES v0.24.0 and kes-flask on ONE Azure Key Vault (the HTTPS fake): what either writes, the
other serves; both make the same REST calls with the same bodies.

Go KES uses the Go SDK (azsecrets, azidentity) with a managed identity found through
``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``, and trusts the fake through ``SSL_CERT_FILE``; kes-flask
uses the Python SDK with client credentials. So this also checks the fake against a second,
independent official client.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

pytest.importorskip("azure.keyvault.secrets")

from tests.backends.azure import CLIENT_ID, environment, fake_key_vault
from tests.backends.azure import keystore as azure_keystore
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer

CONTEXT = b'{"my-bucket":"my-bucket/my-object"}'
GO_IDENTITY = "go-kes-managed-identity"


def server_config(pki: PKI, keystore: str) -> str:
    return f"""admin:
  identity: {pki["admin"].identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
cache:
  expiry:
    any: 1s
{keystore}"""


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    flask_keystore = azure_keystore(tmp_path_factory)  # an empty vault
    fake = fake_key_vault(tmp_path_factory)
    if GO_IDENTITY not in fake.entra.managed:
        fake.entra.add_managed_identity(GO_IDENTITY)
    go_keystore = f"""keystore:
  azure:
    keyvault:
      endpoint: "{fake.vault_url}"
      managed_identity:
        client_id: "{GO_IDENTITY}"
"""
    go_env = {
        "IDENTITY_ENDPOINT": fake.identity_endpoint,
        "IDENTITY_HEADER": fake.identity_header,
        "SSL_CERT_FILE": fake.ca_file,
    }
    go = GoKesServer(
        go_kes,
        tmp_path_factory.mktemp("azure-go"),
        pki,
        server_config(pki, go_keystore),
        env=go_env,
    )
    flask = KesServer(
        tmp_path_factory.mktemp("azure-flask"),
        pki,
        server_config(pki, flask_keystore),
        workers=1,
        env=environment(fake),
    )
    try:
        go.start()
        flask.start()
        yield fake, go.client("admin"), flask.client("admin")
    finally:
        go.stop()
        flask.stop()


def calls(fake, principal: str) -> list[tuple[str, str, int, tuple]]:
    """The vault calls one server made: method, path, status and the JSON body's fields."""
    return [
        (e.method, e.path, e.status, tuple(sorted(e.body)) if isinstance(e.body, dict) else ())
        for e in fake.log
        if e.principal == principal and not e.path.startswith("/msi")
    ]


def test_keys_written_by_either_are_served_by_the_other(both):
    fake, go, flask = both
    go.create_key("from-go")
    go.import_key("go-chacha", bytes(range(32)), "ChaCha20")
    flask.create_key("from-flask")
    flask.import_key("flask-chacha", bytes(range(32, 64)), "ChaCha20")
    for name in ("from-go", "go-chacha", "from-flask", "flask-chacha"):
        assert go.describe_key(name) == flask.describe_key(name)
        assert go.hmac(name, b"root access key") == flask.hmac(name, b"root access key")
        for writer, reader in ((go, flask), (flask, go)):
            dek = writer.generate_key(name, CONTEXT)
            assert reader.decrypt(name, dek.ciphertext, CONTEXT) == dek.plaintext
    assert sorted(go.list_keys("*")) == sorted(flask.list_keys("*"))
    for secret in fake.secrets.values():  # one version each, a bare base64 protobuf value
        assert len(secret.versions) == 1
        base64.b64decode(secret.versions[0].value, validate=True)


def test_both_make_the_same_calls(both):
    fake, go, flask = both
    for client, name in ((go, "same-go"), (flask, "same-flask")):
        client.create_key(name)
        client.describe_key(name)
        client.delete_key(name)
    go_calls = [c for c in calls(fake, GO_IDENTITY) if "same-go" in c[1]]
    flask_calls = [c for c in calls(fake, CLIENT_ID) if "same-flask" in c[1]]
    normalized = [(m, p.replace("same-flask", "same-go"), s, b) for m, p, s, b in flask_calls]

    def shape(sequence):  # version ids differ; retries of a 409 purge may differ in number
        out = []
        for method, path, status, body in sequence:
            parts = path.split("/")
            if len(parts) == 4 and parts[3] not in ("", "versions"):
                path = "/secrets/same-go/<version>"
            if out and out[-1] == (method, path, status, body):
                continue
            out.append((method, path, status, body))
        return [c for c in out if not (c[0] == "DELETE" and c[2] == 409)]

    assert shape(normalized) == shape(go_calls)
    assert ("PUT", "/secrets/same-go", 200, ("value",)) in shape(go_calls)


def test_a_name_deleted_by_one_is_created_again_by_the_other(both):
    _, go, flask = both
    go.create_key("reused")
    go.delete_key("reused")
    flask.create_key("reused")
    assert go.describe_key("reused") == flask.describe_key("reused")
    flask.delete_key("reused")
    go.create_key("reused")
    assert flask.describe_key("reused")["created_by"] == go.describe_key("reused")["created_by"]
