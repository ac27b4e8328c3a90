"""kes-flask servers (real gunicorn) on the session's real OpenBao: login and renewal threads,
reloads, seal/unseal, a Vault restart, revoked and short-lived tokens, Kubernetes login with a
rotated JWT file, operator errors — and never a credential or key in the output."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from kes_flask.client import KesClient
from tests.backends.kubernetes import ServiceAccount, TokenReviewServer
from tests.backends.openbao import OpenBao, Tenant
from tests.kes_server import PKI, KesServer, config_yaml, eventually

pytestmark = pytest.mark.e2e

TOKEN_LIKE = re.compile(r"\b(?:s|hvs|b|hvb)\.[A-Za-z0-9_-]{20,}")
PROBING = "cache:\n  expiry:\n    any: 5m\n    unused: 5m\n    offline: 5m\n"


def start(start_server, pki: PKI, bao: OpenBao, tenant: Tenant, extra: str = "", **kwargs):
    tenant.ping = tenant.ping or "1s"
    config = config_yaml(pki, keystore=tenant.yaml(bao, **kwargs.pop("yaml", {})), extra=extra)
    return start_server(config, **kwargs)


def assert_no_secrets(server: KesServer, bao: OpenBao, *extra: str) -> None:
    """No Vault token, secret id, role id, JWT or key value in anything the server printed."""
    text = server.text()
    assert TOKEN_LIKE.fullmatch(bao.root_token)  # the pattern does match OpenBao's tokens
    for secret in [*bao.secrets, *extra]:
        assert secret not in text, "a credential appears in the server output"
    assert not TOKEN_LIKE.search(text), TOKEN_LIKE.search(text)
    assert "CiQKI" not in text  # the start of every encoded key value


def vault_threads(pid: int) -> list[str]:
    names = []
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith("kes-vault"):
            names.append(name)
    return sorted(names)


def wait_until(check, timeout: float = 30.0):
    return eventually(check, timeout, interval=0.1)


def ready_status(client: KesClient) -> int:
    return client.request("GET", "/v1/ready")[0]


# --- threads, reloads, start-up ------------------------------------------------------------------


def worker_threads(server: KesServer) -> dict[int, list[str]]:
    """The Vault threads of every worker, once each worker has built its app."""
    return {pid: wait_until(lambda p=pid: vault_threads(p)) for pid in server.worker_pids()}


def test_login_failures_reloads_threads_and_denials(start_server, pki: PKI, openbao: OpenBao):
    """A refused login stops start-up with Vault's reason; each worker runs exactly one renewal
    loop and one probe, the master none, across reloads; a reload whose login fails keeps the
    old config; a missing capability is logged with its path. Hostile VAULT_* variables are
    set throughout and change nothing."""
    tenant = openbao.tenant("v1")
    bad = Tenant(**{**tenant.__dict__, "secret_id": "0000-not-the-secret-id"})
    failed = start(start_server, pki, openbao, bad, wait=False)
    assert failed.process.wait(60) == 1
    assert "vault: authentication failed at auth/approle/login: 400 invalid role or secret ID" in (
        failed.text()
    )
    assert "Traceback" not in failed.text()

    hostile = {  # what hvac and requests would read if kes-flask let them
        "VAULT_ADDR": "https://127.0.0.1:1",
        "VAULT_TOKEN": openbao.root_token,
        "VAULT_NAMESPACE": "no-such-namespace",
        "VAULT_CACERT": "/nonexistent/ca.pem",
        "VAULT_CAPATH": "/nonexistent",
        "VAULT_CLIENT_CERT": "/nonexistent/c.pem",
        "VAULT_CLIENT_KEY": "/nonexistent/c.key",
        "REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem",
        "HTTPS_PROXY": "http://127.0.0.1:1",
    }
    server = start(start_server, pki, openbao, tenant, workers=2, env=hostile)
    client = server.client("admin")
    client.create_key("kept")
    for reload in range(2):
        threads = worker_threads(server)
        assert vault_threads(server.process.pid) == []  # the master logged in once, no thread
        assert list(threads.values()) == [["kes-vault-probe", "kes-vault-token"]] * 2, reload
        if reload == 0:
            server.reload()
            wait_until(lambda old=set(threads): not old & set(server.worker_pids()))

    server.config_path.write_text(server.config_path.read_text().replace(tenant.secret_id, "x"))
    server.reload(expect_success=False)
    assert "invalid role or secret ID" in server.text()
    assert client.describe_key("kept")["name"] == "kept"  # the old workers keep serving

    # a policy without 'create' on the entry: a 502 for the client, the fix in the error log
    openbao.root().sys.create_or_update_policy(
        f"kes-{tenant.id}", f'path "{tenant.mount}/*" {{ capabilities = ["read", "list"] }}\n'
    )
    status, _, body = client.request("POST", "/v1/key/create/minio-key")
    assert (status, json.loads(body)) == (502, {"message": "failed to create key"})
    server.wait_for(
        f"vault: permission denied on {tenant.mount}/minio-key: the policy needs 'create'"
    )
    assert_no_secrets(server, openbao)


# --- seal, restart, tokens ---------------------------------------------------------------------


def test_tokens_seal_unseal_and_restart_cost_no_restart(start_server, pki: PKI, openbao: OpenBao):
    """A 4 s token (max 6 s) is replaced every 3 s, and its revocation behind the server's back
    is repaired by one re-login: of requests that all hit Vault (a new key each), none fails.
    Then seal, unseal and a Vault restart: cached keys keep working, recovery needs no restart."""
    tenant = openbao.tenant(
        "v2", transit=True, token_ttl="4s", token_max_ttl="6s", own_auth_mount=True
    )
    server = start(start_server, pki, openbao, tenant, extra=PROBING, workers=1)
    client = server.client("admin")
    failures, count = [], 0
    deadline = time.monotonic() + 7
    revoked = False
    while time.monotonic() < deadline:
        status, _, body = client.request("POST", f"/v1/key/create/k-{count}")
        count += 1
        if status != 200:
            failures.append((status, body))
        if not revoked and time.monotonic() > deadline - 3.5:
            openbao.revoke_logins(tenant)
            revoked = True
    assert failures == [] and count > 10
    assert len(client.list_keys()) == count

    client.create_key("cached")
    client.create_key("uncached")
    dek = client.generate_key("cached")  # now in the worker's cache
    try:
        openbao.seal()
        wait_until(lambda: ready_status(client) == 504)  # within one ping (1 s) and a probe
        assert wait_until(lambda: client.status().get("keystore_unreachable")) is True
        assert client.decrypt("cached", dek.ciphertext) == dek.plaintext
        began = time.monotonic()
        status, _, body = client.request("GET", "/v1/key/describe/uncached")
        assert (status, json.loads(body)) == (502, {"message": "failed to read key"})
        assert time.monotonic() - began < 10  # fails fast: the seal flag, not a timeout
        server.wait_for("vault: key store is sealed")
    finally:
        openbao.unseal()
    wait_until(lambda: ready_status(client) == 200)
    assert client.describe_key("uncached")["name"] == "uncached"

    openbao.stop()
    try:
        began = time.monotonic()
        status, _, _ = client.request("POST", "/v1/key/create/during-outage")
        assert status == 502 and time.monotonic() - began < 20
        assert client.decrypt("cached", dek.ciphertext) == dek.plaintext
        # a worker that dies during the outage is replaced, and the new one boots without Vault
        (old,) = server.worker_pids()
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: server.worker_pids() != [old], timeout=60)
        wait_until(lambda: client.request("GET", "/v1/status")[0] == 200, timeout=60)
        assert server.process.poll() is None
    finally:
        openbao.start()
    wait_until(lambda: ready_status(client) == 200)
    wait_until(lambda: client.request("POST", "/v1/key/create/after-restart")[0] == 200)
    assert client.generate_key("after-restart").plaintext
    assert_no_secrets(server, openbao)


def test_kubernetes_login_rereads_a_rotated_jwt_file(
    start_server, pki: PKI, openbao: OpenBao, tmp_path: Path
):
    kubernetes = TokenReviewServer(tmp_path)
    try:
        account = ServiceAccount("minio", "kes")
        first = account.token()
        kubernetes.accept(account, first)
        jwt_file = tmp_path / "token"
        jwt_file.write_text(first)
        tenant = openbao.tenant("v2")
        auth = openbao.kubernetes_auth(
            tenant, kubernetes.url, kubernetes.ca_pem, "minio", "kes", str(jwt_file), "4s"
        )
        server = start(start_server, pki, openbao, tenant, workers=1, yaml={"auth": auth})
        client = server.client("admin")
        client.create_key("k8s")
        second = account.token()
        kubernetes.accept(account, second)
        jwt_file.write_text(second)  # the kubelet rotates the projected token …
        wait_until(lambda: second in kubernetes.reviewed, timeout=20)
        kubernetes.revoke(first)  # … and the old one stops working
        reviews = len(kubernetes.reviewed)
        wait_until(lambda: len(kubernetes.reviewed) > reviews, timeout=20)
        assert set(kubernetes.reviewed[reviews:]) == {second}
        assert client.generate_key("k8s").plaintext
        client.create_key("k8s-after-rotation")
        assert_no_secrets(server, openbao, first, second)
    finally:
        kubernetes.stop()
