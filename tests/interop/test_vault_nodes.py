"""Several stateless nodes on one Vault: two kes-flask servers and one Go KES v0.24.0 server
with the same ``keystore.vault`` config on the session's OpenBao. Keys created by any node are
used by the others, in both directions, for K/V v1 and v2 + transit; what Go KES wrote
into Vault is the golden entry kes-flask must produce itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.openbao import OpenBao
from tests.e2e.test_vault_server import assert_no_secrets
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer, config_yaml

CONTEXT = b'{"bucket":"bucket/object"}'
# transit is the same layer over v1 and v2: one layout each keeps the three nodes' boots few
LAYOUTS = {"kv1": ("v1", False), "kv2-transit": ("v2", True)}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def nodes(request, tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path, openbao):
    version, transit = LAYOUTS[request.param]
    tenant = openbao.tenant(version, transit=transit, prefix="minio")
    config = config_yaml(pki, keystore=tenant.yaml(openbao))
    servers = {
        "go": GoKesServer(go_kes, tmp_path_factory.mktemp("vault-go"), pki, config),
        "flask-a": KesServer(tmp_path_factory.mktemp("vault-a"), pki, config, workers=2),
        "flask-b": KesServer(tmp_path_factory.mktemp("vault-b"), pki, config, workers=1),
    }
    try:
        for server in servers.values():  # all three boot at once
            server.start(wait=False)
        for server in servers.values():
            server.wait_ready(timeout=60)
        yield {name: server.client("admin") for name, server in servers.items()}, tenant
    finally:
        for server in servers.values():
            server.stop()
    for name in ("flask-a", "flask-b"):
        assert_no_secrets(servers[name], openbao)


def entry(openbao: OpenBao, tenant, name: str) -> dict:
    root = openbao.root()
    if tenant.version == "v1":
        return root.read(f"{tenant.mount}/minio/{name}")["data"]
    return root.secrets.kv.v2.read_secret_version(
        f"minio/{name}", version=1, mount_point=tenant.mount, raise_on_deleted_version=True
    )["data"]["data"]


@pytest.mark.parametrize("writer", ["go", "flask-a", "flask-b"])
def test_keys_created_by_any_node_work_on_every_other(nodes, openbao: OpenBao, writer):
    clients, tenant = nodes
    name = f"made-by-{writer}"
    clients[writer].create_key(name)
    stored = entry(openbao, tenant, name)
    assert list(stored) == [name]  # exactly {"<name>": "<value>"}, whoever wrote it
    value = stored[name]
    assert value.startswith("vault:v1:") if tenant.transit_key else value.startswith("CiQKI")
    for reader, client in clients.items():
        assert client.describe_key(name)["name"] == name, reader
        dek = clients[writer].generate_key(name, CONTEXT)
        assert client.decrypt(name, dek.ciphertext, CONTEXT) == dek.plaintext, reader
        dek = client.generate_key(name, CONTEXT)
        assert clients[writer].decrypt(name, dek.ciphertext, CONTEXT) == dek.plaintext, reader
        assert client.hmac(name, b"x") == clients[writer].hmac(name, b"x"), reader


def test_listing_and_create_only_across_nodes(nodes):
    clients, _tenant = nodes
    clients["go"].import_key("shared-import", bytes(range(32)))
    from kes_flask.client import ErrKeyExists, KesServerError

    with pytest.raises(KesServerError) as exists:
        clients["flask-a"].create_key("shared-import")
    assert exists.value == ErrKeyExists
    sealed = clients["flask-b"].encrypt("shared-import", b"payload", CONTEXT)
    assert clients["go"].decrypt("shared-import", sealed, CONTEXT) == b"payload"
    listed = {name: sorted(client.list_keys()) for name, client in clients.items()}
    assert listed["go"] == listed["flask-a"] == listed["flask-b"]
    assert "shared-import" in listed["go"]
