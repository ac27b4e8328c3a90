"""Every route over real TLS against a 2-worker gunicorn, for three kinds of clients, on
every keystore backend of ``tests.backends`` (the ``keystore_yaml`` fixture).

``app`` authenticates with a certificate derived from an API key (Ed25519, as MinIO does),
``ecdsa`` with a self-signed ECDSA certificate, ``stranger`` with a valid certificate whose
identity has no policy. ``app`` and ``ecdsa`` share one policy.
"""

from __future__ import annotations

import base64
import json

import pytest

from kes_flask.client import (
    ErrDecrypt,
    ErrIdentityNotFound,
    ErrKeyExists,
    ErrKeyNotFound,
    ErrNotAllowed,
    ErrPolicyNotFound,
    KesServerError,
)
from tests.backends import DELETE_MISSING_IS_404, environment, keystore_kind
from tests.kes_server import PKI, KesServer, config_yaml

pytestmark = pytest.mark.e2e

ALLOW = [
    "/v1/status",
    "/v1/api",
    "/v1/metrics",
    "/v1/key/create/app-*",
    "/v1/key/import/app-*",
    "/v1/key/describe/app-*",
    "/v1/key/list/*",
    "/v1/key/delete/app-*",
    "/v1/key/generate/app-*",
    "/v1/key/encrypt/app-*",
    "/v1/key/decrypt/app-*",
    "/v1/key/hmac/app-*",
    "/v1/policy/read/*",
    "/v1/policy/list/*",
    "/v1/policy/describe/*",
    "/v1/identity/describe/*",
    "/v1/identity/list/*",
]
CLIENTS = ["app", "ecdsa"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: PKI, keystore_yaml: str):
    workdir = tmp_path_factory.mktemp("matrix")
    identities = "".join(f"\n      - {pki[n].identity}" for n in ("app", "ecdsa", "expired"))
    allow = "".join(f"\n      - {p}" for p in ALLOW)
    policy = f"""
policy:
  app:
    allow:{allow}
    deny:
      - /v1/key/delete/app-protected*
    identities:{identities}
"""
    config = config_yaml(pki, keystore=keystore_yaml, extra=policy)
    kes = KesServer(workdir, pki, config, workers=2, env=environment(keystore_yaml))
    kes.start()
    yield kes
    kes.stop()


@pytest.fixture(scope="module")
def clients(server: KesServer):
    made = {name: server.client(name) for name in ("admin", "app", "ecdsa", "stranger", "expired")}
    yield made
    for client in made.values():
        client.close()


def raises(expected: KesServerError, call, *args):
    with pytest.raises(KesServerError) as info:
        call(*args)
    assert info.value == expected, info.value
    return info.value


def test_the_three_kinds_of_identity_are_distinct(pki: PKI):
    assert pki["app"].identity == pki["app"].api_key.identity
    assert len({pki[n].identity for n in ("app", "ecdsa", "stranger")}) == 3


def test_version_needs_no_policy(clients):
    for client in clients.values():
        assert client.version() == "0.1.0"


@pytest.mark.parametrize("name", CLIENTS)
def test_status_api_metrics(clients, name):
    client = clients[name]
    status = client.status()
    assert status["keystore_latency"] >= 1 and status["num_cpu"] >= 1
    assert len(client.apis()) == 22
    assert "kes_system_up_time" in client.metrics()
    assert client.is_ready() is False  # /v1/ready is not in the policy: 403


def test_stranger_is_forbidden_everywhere(clients):
    stranger = clients["stranger"]
    for call, args in [
        (stranger.status, ()),
        (stranger.apis, ()),
        (stranger.metrics, ()),
        (stranger.create_key, ("app-x",)),
        (stranger.import_key, ("app-x", bytes(32))),
        (stranger.describe_key, ("app-x",)),
        (stranger.delete_key, ("app-x",)),
        (stranger.list_keys, ()),
        (stranger.generate_key, ("app-x",)),
        (stranger.encrypt, ("app-x", b"p")),
        (stranger.decrypt, ("app-x", b"c" * 60)),
        (stranger.hmac, ("app-x", b"m")),
        (stranger.read_policy, ("app",)),
        (stranger.list_policies, ()),
        (stranger.describe_policy, ("app",)),
        (stranger.describe_identity, ("x",)),
        (stranger.list_identities, ()),
    ]:
        raises(ErrNotAllowed, call, *args)
    raises(ErrIdentityNotFound, stranger.describe_self)
    assert stranger.request("GET", "/v1/log/audit")[0] == 403


@pytest.mark.parametrize("name", CLIENTS)
def test_key_lifecycle(clients, name, keystore_yaml):
    client = clients[name]
    key = f"app-{name}-key"
    client.create_key(key)
    raises(ErrKeyExists, client.create_key, key)
    info = client.describe_key(key)
    assert info["name"] == key and info["algorithm"] == "AES256"
    assert key in client.list_keys("app-*")
    dek = client.generate_key(key, b'{"bucket":"bucket/object"}')
    assert len(dek.plaintext) == 32 and len(dek.ciphertext) == 76
    assert client.decrypt(key, dek.ciphertext, b'{"bucket":"bucket/object"}') == dek.plaintext
    raises(ErrDecrypt, client.decrypt, key, dek.ciphertext, b"{}")
    sealed = client.encrypt(key, b"secret message")
    assert client.decrypt(key, sealed) == b"secret message"
    assert client.hmac(key, b"root access key") == client.hmac(key, b"root access key")
    client.delete_key(key)
    raises(ErrKeyNotFound, client.describe_key, key)
    if DELETE_MISSING_IS_404[keystore_kind(keystore_yaml)]:
        raises(ErrKeyNotFound, client.delete_key, key)
    else:
        client.delete_key(key)  # Vault, Azure, AWS: deleting a missing key succeeds


def test_created_by_is_the_callers_identity(clients, pki):
    clients["ecdsa"].create_key("app-owned")
    assert clients["ecdsa"].describe_key("app-owned")["created_by"] == pki["ecdsa"].identity


@pytest.mark.parametrize("name", CLIENTS)
def test_policy_limits_names_and_deny_wins(clients, name):
    client = clients[name]
    raises(ErrNotAllowed, client.create_key, "other-key")
    client.create_key(f"app-protected-{name}")
    raises(ErrNotAllowed, client.delete_key, f"app-protected-{name}")
    raises(ErrKeyNotFound, client.describe_key, "app-never-created")


def test_import_and_hmac_of_imported_keys(clients):
    client = clients["app"]
    client.import_key("app-imported", bytes(range(32)), "ChaCha20")
    assert client.describe_key("app-imported")["algorithm"] == "ChaCha20"
    assert len(client.hmac("app-imported", b"x")) == 32
    status, _, body = client.request(
        "POST", "/v1/key/import/app-bad", {"key": "AAAA", "cipher": "AES256"}
    )
    assert (status, json.loads(body)["message"]) == (406, "invalid key size for 'AES256'")


def test_expired_self_signed_certificate_is_accepted(clients):
    assert clients["expired"].status()["keystore_latency"] >= 1


@pytest.mark.parametrize("name", CLIENTS)
def test_policy_and_identity_views(clients, pki, name):
    client = clients[name]
    assert client.list_policies() == ["app"]
    policy = client.read_policy("app")
    assert set(policy["allow"]) == set(ALLOW)
    assert policy["deny"] == {"/v1/key/delete/app-protected*": {}}
    assert client.describe_policy("app")["created_by"] == pki["admin"].identity
    raises(ErrPolicyNotFound, client.read_policy, "nope")
    identities = client.list_identities()
    assert identities == sorted([pki[n].identity for n in ("admin", "app", "ecdsa", "expired")])
    assert client.describe_identity(pki["ecdsa"].identity)["policy"] == "app"
    assert client.describe_identity(pki["admin"].identity) == {
        "admin": True,
        "created_at": client.describe_identity(pki["admin"].identity)["created_at"],
    }
    raises(ErrIdentityNotFound, client.describe_identity, pki["stranger"].identity)
    me = client.describe_self()
    assert me["identity"] == pki[name].identity and me["policy"] == "app"


@pytest.mark.parametrize("name", ["app", "ecdsa", "stranger"])
def test_wrong_methods_are_405_for_everyone(server, clients, name):
    client = clients[name]
    for method, path, expected in [
        ("GET", "/v1/key/create/app-x", "PUT"),
        ("PUT", "/v1/status", "GET"),
        ("DELETE", "/v1/key/generate/app-x", "PUT"),
        ("POST", "/v1/key/delete/app-x", "DELETE"),
        ("HEAD", "/v1/key/describe/app-x", "GET"),
    ]:
        status, headers, body = client.request(method, path)
        assert status == 405, (method, path)
        assert headers["Accept"] == expected
        if method != "HEAD":
            assert (
                json.loads(body)["message"] == f"received method '{method}' expected '{expected}'"
            )


@pytest.mark.parametrize("name", CLIENTS)
def test_bad_names_and_patterns(clients, name):
    client = clients[name]
    status, _, body = client.request("POST", "/v1/key/create/app-bad.name")
    # the policy matches by prefix first (app-*), then the handler rejects the name
    assert (status, json.loads(body)["message"]) == (
        400,
        "key name 'app-bad.name' is empty, too long or contains invalid characters",
    )
    status, _, body = client.request("GET", "/v1/key/list/app-*-*")
    assert (status, json.loads(body)["message"]) == (
        400,
        "listing pattern 'app-*-*' is empty, too long or is invalid",
    )


@pytest.mark.parametrize("name", CLIENTS)
def test_oversized_and_malformed_bodies(clients, name):
    client = clients[name]
    client.create_key(f"app-body-{name}")
    path = f"/v1/key/encrypt/app-body-{name}"
    huge = {"plaintext": base64.b64encode(b"x" * 760_000).decode()}
    for body, content_type in [
        (huge, "application/json"),
        ({"plaintext": 5}, None),
        ([1, 2], None),
    ]:
        status, headers, payload = client.request("POST", path, body, content_type=content_type)
        assert status == 400
        assert headers["Content-Type"] == "application/json"
        assert json.loads(payload) == {"message": "invalid request body"}
    # the connection is still usable after the oversized body
    assert client.status()["num_cpu"] >= 1
