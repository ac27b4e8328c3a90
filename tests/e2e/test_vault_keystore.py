"""The Vault keystore in-process against the session's real OpenBao (no gunicorn).

Golden data both ways: what kes-flask writes is exactly Go KES's entry, and entries written the
way Go KES writes them are served. Every test works in its own mount (a "tenant").
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from kes_flask.config.errors import ConfigError
from kes_flask.config.loader import parse_config
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
)
from kes_flask.keystore.vault import VaultKeystore
from tests.backends.openbao import OpenBao, Tenant
from tests.e2e.test_vault_server import TOKEN_LIKE

pytestmark = pytest.mark.e2e

GO_VALUE = (Path(__file__).parents[1] / "data" / "go-kes").resolve()


def config_for(section: str):
    text = "admin:\n  identity: disabled\ntls:\n  key: k.key\n  cert: k.crt\n" + section
    return parse_config(text, {}).keystore


def connect(openbao: OpenBao, tenant: Tenant, **yaml) -> VaultKeystore:
    store = open_keystore(config_for(tenant.yaml(openbao, **yaml)), probe=True)
    assert isinstance(store, VaultKeystore)
    return store


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog, openbao: OpenBao):
    """Whatever the keystore logs in these tests, no credential or key value is in it."""
    caplog.set_level("DEBUG")
    caplog.set_level("DEBUG", logger="kes_flask")  # its level is INFO once an app ran
    yield
    # caplog.records here would be the teardown's only: every phase's records
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    assert records  # the keystore does log (at DEBUG at least)
    text = "\n".join(record.getMessage() for record in records)
    for secret in openbao.secrets:
        assert secret not in text
    assert not TOKEN_LIKE.search(text) and "CiQKI" not in text


@pytest.fixture
def stores():
    opened: list[VaultKeystore] = []
    yield opened
    for store in opened:
        store.close()


def value() -> bytes:
    return KeyVersion.generate(created_by="test").encode()


def raw_read(openbao: OpenBao, tenant: Tenant, path: str) -> dict:
    reply = openbao.root(tenant.namespace).adapter.get(f"/v1/{path}")
    return reply.json() if not isinstance(reply, dict) else reply


# --- golden data ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_writes_exactly_go_kes_entry_and_nothing_else(openbao: OpenBao, stores, version):
    tenant = openbao.tenant(version, prefix="tenant-1")
    store = connect(openbao, tenant)
    stores.append(store)
    encoded = value()
    store.create("minio-key", encoded)
    if version == "v1":
        entry = raw_read(openbao, tenant, f"{tenant.mount}/tenant-1/minio-key")["data"]
        listing = raw_read(openbao, tenant, f"{tenant.mount}?list=true")["data"]["keys"]
    else:
        read = raw_read(openbao, tenant, f"{tenant.mount}/data/tenant-1/minio-key?version=1")
        entry = read["data"]["data"]
        assert read["data"]["metadata"]["version"] == 1
        assert read["data"]["metadata"]["custom_metadata"] is None
        listing = raw_read(openbao, tenant, f"{tenant.mount}/metadata?list=true")["data"]["keys"]
    assert entry == {"minio-key": encoded.decode()}
    assert listing == ["tenant-1/"]
    assert store.get("minio-key") == encoded
    assert store.list("", -1) == (["minio-key"], "")


def test_transit_values_are_vault_v1_ciphertexts_of_the_base64_value(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2", transit=True)
    store = connect(openbao, tenant)
    stores.append(store)
    encoded = value()
    store.create("sealed-key", encoded)
    stored = raw_read(openbao, tenant, f"{tenant.mount}/data/sealed-key")["data"]["data"]
    assert list(stored) == ["sealed-key"] and stored["sealed-key"].startswith("vault:v1:")
    plain = openbao.root().secrets.transit.decrypt_data(
        tenant.transit_key, stored["sealed-key"], mount_point=openbao.transit_mount
    )["data"]["plaintext"]
    assert base64.b64decode(plain) == encoded  # sent as base64(V), as Go KES does
    assert store.get("sealed-key") == encoded


def go_kes_values() -> dict[str, str]:
    """Key values Go KES v0.24.0 wrote to its filesystem store (current and legacy format)."""
    values = {}
    for path in sorted(GO_VALUE.rglob("*")):
        if path.is_file() and path.parent.name == "keys":
            values[path.name] = path.read_text()
    return values


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_serves_entries_written_the_go_kes_way(openbao: OpenBao, stores, version):
    tenant = openbao.tenant(version, transit=True)
    root = openbao.root()
    golden = go_kes_values() or {"go-key": value().decode()}
    legacy = '{"bytes":"' + base64.b64encode(bytes(range(32))).decode() + '"}'
    golden["legacy-key"] = legacy
    for name, encoded in golden.items():
        if version == "v1":
            root.write_data(f"{tenant.mount}/{name}", data={name: encoded})
        else:
            root.secrets.kv.v2.create_or_update_secret(
                name, {name: encoded}, cas=0, mount_point=tenant.mount
            )
    cipher = root.secrets.transit.encrypt_data(
        tenant.transit_key,
        base64.b64encode(b'{"bytes":"' + b"A" * 43 + b'="}').decode(),
        mount_point=openbao.transit_mount,
    )["data"]["ciphertext"]
    if version == "v1":
        root.write_data(f"{tenant.mount}/transit-key", data={"transit-key": cipher})
    else:
        root.secrets.kv.v2.create_or_update_secret(
            "transit-key", {"transit-key": cipher}, mount_point=tenant.mount
        )
    store = connect(openbao, tenant)
    stores.append(store)
    for name, encoded in golden.items():
        assert store.get(name) == encoded.encode()
        KeyVersion.parse(store.get(name))  # the key decoder reads all of them
    assert store.get("transit-key") == b'{"bytes":"' + b"A" * 43 + b'="}'
    assert store.list("", -1)[0] == sorted([*golden, "transit-key"])


def test_transit_value_without_transit_config_is_a_clear_error(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2", transit=True)
    writer = connect(openbao, tenant)
    stores.append(writer)
    writer.create("k", value())
    reader_tenant = Tenant(**{**tenant.__dict__, "transit_key": ""})
    reader = connect(openbao, reader_tenant)
    stores.append(reader)
    with pytest.raises(KeystoreError, match="key is encrypted with vault transit key"):
        reader.get("k")


# --- the seed tutorials' configs ------------------------------------------------------------------

SEEDS = Path(__file__).parents[1] / "data" / "config" / "seeds"


@pytest.mark.parametrize(
    "seed",
    [
        "000-vault-approle.yml",
        "000-keystore-prefix.yml",
        "000-keystore-namespace.yml",
        "001-vault.yml",
    ],
)
def test_seed_vault_configs_work_unchanged(openbao: OpenBao, seed: str, tmp_path: Path):
    """The tutorials' files with only their placeholders filled in run against a real Vault."""
    text = (SEEDS / seed).read_text()
    namespace = "seed-tenant" if "<vault-namespace>" in text else ""
    prefix = "seed-prefix" if "<tenant-name>" in text else ""
    tenant = openbao.tenant("v1", mount="kv", namespace=namespace, prefix=prefix)
    shutil.copy(openbao.ca_file, tmp_path / "vault.crt")
    fills = {
        "https://127.0.0.1:8200": openbao.endpoint,
        "<vault-namespace>": namespace,
        "<tenant-name>": "seed-prefix",
        'identity: ""': "identity: disabled",
    }
    for old, new in fills.items():
        text = text.replace(old, new)
    text = re.sub(r'id: +""', f"id: {tenant.role_id}", text)
    text = re.sub(r'secret: +""', f"secret: {tenant.secret_id}", text)
    if "tls:\n  key" not in text.split("keystore:")[0]:
        text = "tls:\n  key: private.key\n  cert: public.crt\n" + text
    if "admin:" not in text:
        text = "admin:\n  identity: disabled\n" + text
    cwd, saved = os.getcwd(), os.environ.get("SSL_CERT_FILE")
    os.chdir(tmp_path)  # "vault.crt" is relative, as in the tutorials
    if "ca: vault.crt" not in text:  # no tls.ca: the system trust store must know Vault's CA
        os.environ["SSL_CERT_FILE"] = openbao.ca_file
    try:
        store = open_keystore(parse_config(text, {}, seed).keystore, probe=True)
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved
    try:
        name = f"seed-{seed.split('.')[0]}"
        encoded = value()
        store.create(name, encoded)
        assert store.get(name) == encoded and name in store.list("", -1)[0]
        location = f"kv/{prefix}/{name}" if prefix else f"kv/{name}"
        assert raw_read(openbao, tenant, location)["data"] == {name: encoded.decode()}
        store.delete(name)
    finally:
        store.close()


# --- create, get, delete, list semantics -------------------------------------------------------


def test_cas_required_mount_and_recreate_after_delete(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2", cas_required=True)
    store = connect(openbao, tenant)
    stores.append(store)
    first, second = value(), value()
    store.create("k", first)
    with pytest.raises(KeyExistsError):
        store.create("k", second)
    store.delete("k")  # metadata and every version
    reply = openbao.root().adapter.get(f"/v1/{tenant.mount}/metadata/k", raise_exception=False)
    assert reply.status_code == 404
    store.delete("k")  # deleting a missing key succeeds on Vault (Go KES parity)
    with pytest.raises(KeyNotFoundError):
        store.get("k")
    store.create("k", second)
    assert store.get("k") == second


def test_reads_version_one_even_after_an_update_behind_our_back(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2")
    store = connect(openbao, tenant)
    stores.append(store)
    original = value()
    store.create("k", original)
    openbao.root().secrets.kv.v2.create_or_update_secret(
        "k", {"k": value().decode()}, mount_point=tenant.mount
    )
    assert store.get("k") == original


def test_soft_deleted_version_is_an_error_not_a_missing_key(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2")
    store = connect(openbao, tenant)
    stores.append(store)
    store.create("k", value())
    openbao.root().secrets.kv.v2.delete_secret_versions("k", [1], mount_point=tenant.mount)
    with pytest.raises(KeystoreError, match="entry exists but no secret key is present"):
        store.get("k")
    with pytest.raises(KeystoreError, match="delete the key's metadata"):
        store.create("k", value())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_concurrent_creates_on_several_nodes_have_one_winner(openbao: OpenBao, stores, version):
    tenant = openbao.tenant(version)
    nodes = [connect(openbao, tenant) for _ in range(4)]
    stores.extend(nodes)
    outcomes: dict[str, list[str]] = {f"race-{i}": [] for i in range(6)}
    barrier = threading.Barrier(len(nodes))

    def run(node: VaultKeystore) -> None:
        barrier.wait()
        for name, results in outcomes.items():
            try:
                node.create(name, value())
                results.append("ok")
            except KeyExistsError:
                results.append("exists")
            except KeystoreError as err:
                results.append(str(err))

    threads = [threading.Thread(target=run, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for results in outcomes.values():
        assert set(results) <= {"ok", "exists"}, results  # never a 502 for a lost race
        if version == "v2":  # cas: 0 makes the create atomic; v1 has no atomic create
            assert sorted(results) == ["exists"] * 3 + ["ok"], results


def test_listing_empty_store_prefix_and_folders(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2", prefix="a/b")
    store = connect(openbao, tenant)
    stores.append(store)
    assert store.list("", -1) == ([], "")
    for name in ("k2", "k1", "other"):
        store.create(name, value())
    openbao.root().secrets.kv.v2.create_or_update_secret(
        "a/b/folder/inner", {"inner": "x"}, mount_point=tenant.mount
    )
    assert store.list("", -1) == (["folder/", "k1", "k2", "other"], "")
    assert store.list("k", -1) == (["k1", "k2"], "")
    assert store.list("", 2) == (["folder/", "k1"], "k2")


def test_prefix_and_engine_paths_are_cleaned(openbao: OpenBao, stores):
    tenant = openbao.tenant(
        "v1", prefix="/x//y/", capabilities='path "{m}/x/y/*" { capabilities = ["create", "read"] }'
    )
    store = connect(openbao, tenant)
    stores.append(store)
    store.create("k", b"v")
    assert raw_read(openbao, tenant, f"{tenant.mount}/x/y/k")["data"] == {"k": "v"}


# --- status, namespaces, TLS --------------------------------------------------------------------


def test_status_in_a_namespace_is_sent_without_the_namespace_header(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2", namespace="status-ns")
    store = connect(openbao, tenant)
    stores.append(store)
    assert store.status() > 0
    health = requests.get(
        f"{openbao.endpoint}/v1/sys/health",
        headers={"X-Vault-Namespace": "status-ns"},
        verify=openbao.ca_file,
        timeout=10,
    )
    assert health.status_code != 200  # why the header must not be sent


def test_namespaced_login_in_the_root_namespace(openbao: OpenBao, stores):
    """approle.namespace "/" logs in at the root while data lives in a namespace."""
    inner = openbao.tenant("v2", namespace="login-ns")
    outer = openbao.tenant("v2")
    # the root-namespace role gets a policy for the namespaced mount (namespace-relative path)
    openbao.root().sys.create_or_update_policy(
        f"kes-{outer.id}",
        outer.policy + f'path "login-ns/{inner.mount}/*" {{ capabilities = ["create", "read", '
        '"delete", "list"] }\n',
    )
    auth = f"approle:\n  namespace: /\n  id: {outer.role_id}\n  secret: {outer.secret_id}\n"
    store = connect(openbao, inner, auth=auth)
    stores.append(store)
    store.create("k", b"v")
    assert store.get("k") == b"v"


def test_ca_directory_and_client_certificate(openbao: OpenBao, stores, tmp_path: Path):
    tenant = openbao.tenant("v1")
    cas = tmp_path / "cas" / "nested"
    cas.mkdir(parents=True)
    shutil.copy(openbao.ca_file, cas / "vault-ca.pem")
    (tmp_path / "cas" / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match=r"empty\.pem' is not a readable PEM"):
        open_keystore(
            config_for(tenant.yaml(openbao).replace(openbao.ca_file, str(cas.parent))), probe=True
        )
    (tmp_path / "cas" / "empty.pem").unlink()
    mtls = tenant.yaml(openbao, endpoint=openbao.mtls_endpoint).replace(
        openbao.ca_file, str(tmp_path / "cas")
    )
    with pytest.raises(ConfigError, match=r"authentication failed.*TLS|certificate"):
        open_keystore(config_for(mtls), probe=True)
    with_cert = mtls.replace(
        "    tls:\n",
        f"    tls:\n      cert: {openbao.client_cert}\n      key: {openbao.client_key}\n",
    )
    store = open_keystore(config_for(with_cert), probe=True)
    stores.append(store)
    store.create("k", b"v")
    assert store.get("k") == b"v" and store.status() > 0


def test_untrusted_vault_certificate_fails_login_clearly(openbao: OpenBao, tmp_path: Path):
    tenant = openbao.tenant("v1")
    other_ca = tmp_path / "other.pem"
    from kes_flask.auth.certs import certificate_pem
    from tests.certificates import make_certificate

    other_ca.write_bytes(certificate_pem(make_certificate("other CA", ca=True)[1]))
    section = tenant.yaml(openbao).replace(openbao.ca_file, str(other_ca))
    with pytest.raises(ConfigError, match=r"TLS handshake with Vault failed.*certificate verify"):
        open_keystore(config_for(section), probe=True)


def test_vault_environment_variables_are_ignored(openbao: OpenBao, stores, tmp_path: Path):
    """hvac and requests read VAULT_* / REQUESTS_CA_BUNDLE / ~/.vault-token: the config wins."""
    tenant = openbao.tenant("v1")
    saved = dict(os.environ)
    (tmp_path / ".vault-token").write_text(openbao.root_token)
    os.environ.update(
        VAULT_ADDR="https://127.0.0.1:1",
        VAULT_TOKEN=openbao.root_token,
        VAULT_NAMESPACE="no-such-namespace",
        VAULT_CACERT=str(tmp_path / "missing.pem"),
        REQUESTS_CA_BUNDLE=str(tmp_path / "missing.pem"),
        HTTPS_PROXY="http://127.0.0.1:1",
        HOME=str(tmp_path),
    )
    try:
        store = connect(openbao, tenant)
        stores.append(store)
        store.create("k", b"v")
        assert store.get("k") == b"v"
        # the AppRole policy, not the root token from the environment, decides
        with pytest.raises(KeystoreError, match="permission denied on"):
            store._call("GET", "sys/mounts", "read")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_permission_denied_names_path_and_capability(openbao: OpenBao, stores):
    tenant = openbao.tenant(
        "v2",
        prefix="tenant-1",
        capabilities='path "{m}/data/*" { capabilities = ["read"] }\n',
    )
    store = connect(openbao, tenant)
    stores.append(store)
    with pytest.raises(KeystoreError) as info:
        store.create("minio-key", value())
    assert str(info.value) == (
        f"vault: permission denied on {tenant.mount}/data/tenant-1/minio-key: "
        "the policy needs 'create'"
    )
    with pytest.raises(KeystoreError, match=r"permission denied on .*/metadata/tenant-1: .*'list'"):
        store.list("", -1)


# --- login and renewal ---------------------------------------------------------------------------


def test_failed_login_says_vaults_reason(openbao: OpenBao):
    tenant = openbao.tenant("v1")
    bad = Tenant(**{**tenant.__dict__, "secret_id": "not-the-secret"})
    with pytest.raises(ConfigError, match=r"authentication failed at auth/approle/login: 400 .*"):
        open_keystore(config_for(bad.yaml(openbao)), probe=True)


def test_a_worker_without_login_says_why_until_it_can_log_in(openbao: OpenBao):
    tenant = openbao.tenant("v1")
    bad = Tenant(**{**tenant.__dict__, "secret_id": "not-the-secret"})
    store = open_keystore(config_for(bad.yaml(openbao)))  # as a worker: no exception
    try:
        with pytest.raises(KeystoreError, match=r"not logged in yet: .*invalid role or secret ID"):
            store.get("k")
        assert store.status() > 0  # the health check needs no token
    finally:
        store.close()


def test_revoked_token_costs_no_failed_request(openbao: OpenBao, stores):
    tenant = openbao.tenant("v2")
    store = connect(openbao, tenant)
    stores.append(store)
    store.create("before", b"v")
    old = store._tokens.token
    openbao.root().auth.token.revoke(old)
    store.create("after", b"v")  # 403 → token invalid → one re-login → retried
    assert store._tokens.token != old
    assert store.get("before") == b"v"


def test_renewal_and_relogin_across_the_max_ttl_with_no_failed_request(openbao: OpenBao):
    """TTL 5 s, max TTL 10 s, re-login below 2.5 s: renew-self, then a new login when the max
    TTL runs out; a request every 0.1 s meanwhile, none fails."""
    tenant = openbao.tenant("v1", token_ttl="5s", token_max_ttl="10s")
    store = VaultKeystore(config_for(tenant.yaml(openbao)), short_ttl=2.5)
    store.start()
    failures = []
    deadline = time.monotonic() + 11
    try:
        while time.monotonic() < deadline:
            try:
                store.list("", -1)
            except KeystoreError as err:
                failures.append(str(err))
            time.sleep(0.1)
        tokens = store._tokens
        assert failures == []
        assert tokens.renewals >= 1 and tokens.logins >= 1, (tokens.renewals, tokens.logins)
        running = {t.name for t in threading.enumerate()}
        assert {"kes-vault-token", "kes-vault-probe"} <= running
    finally:
        store.close()
    running = {t.name for t in threading.enumerate()}
    assert not {"kes-vault-token", "kes-vault-probe"} & running  # close() ends both


# --- the operator guide's commands ----------------------------------------------------------------

GUIDE = Path(__file__).parents[2] / "docs" / "keystores" / "vault.md"


def guide_block(name: str) -> str:
    text = GUIDE.read_text()
    after = text.split(f"<!-- tested: {name} -->\n```sh\n", 1)[1]
    return after.split("\n```", 1)[0]


def test_the_guides_setup_commands_work_with_its_config(openbao: OpenBao, tmp_path: Path):
    """docs/keystores/vault.md §2 and §4 as written, run with the bao CLI in a fresh namespace."""
    from tests.backends.openbao import bao_binary

    namespace = "guide"
    openbao._raw("POST", f"sys/namespaces/{namespace}")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "BAO_ADDR": openbao.endpoint,
        "BAO_TOKEN": openbao.root_token,
        "BAO_CACERT": openbao.ca_file,
        "BAO_NAMESPACE": namespace,
    }
    script = f'vault() {{ "{bao_binary()}" "$@"; echo; }}\nset -e\n'  # -field prints no newline
    run = subprocess.run(
        ["bash", "-c", script + guide_block("kv2-approle")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    role_id, secret_id = run.stdout.split()[-2:]
    openbao.secrets.update({secret_id})
    transit = subprocess.run(
        ["bash", "-c", script + guide_block("transit")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert transit.returncode == 0, transit.stderr
    guide = GUIDE.read_text()
    section = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    section = section.replace("https://vault.example.com:8200", openbao.endpoint)
    section = section.replace("/etc/kes-flask/vault-ca.pem", openbao.ca_file)
    section = section.replace("    engine: kv\n", f"    engine: kv\n    namespace: {namespace}\n")
    transit_yaml = guide.split("```yaml\n")[3].split("```", 1)[0]
    environ = {"KES_VAULT_ROLE_ID": role_id, "KES_VAULT_SECRET_ID": secret_id}
    text = "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\n" + section + transit_yaml
    store = open_keystore(parse_config(text, environ).keystore, probe=True)
    try:
        encoded = value()
        store.create("from-the-guide", encoded)
        assert store.get("from-the-guide") == encoded
        assert store.list("", -1) == (["from-the-guide"], "")
        stored = openbao.root(namespace).secrets.kv.v2.read_secret_version(
            "from-the-guide", mount_point="kv", raise_on_deleted_version=True
        )["data"]["data"]["from-the-guide"]
        assert stored.startswith("vault:v1:")
        store.delete("from-the-guide")
    finally:
        store.close()
