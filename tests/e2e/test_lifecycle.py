"""Data and configuration over the server's lifetime: Go KES key files, restarts, SIGHUP,
pre-defined keys, and several workers sharing one keystore."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest

from kes_flask.client import ErrKeyNotFound, ErrNotAllowed, KesClient, KesServerError
from kes_flask.crypto import KeyVersion
from tests.kes_server import PKI, config_yaml, eventually

pytestmark = pytest.mark.e2e

GO_DATA = Path(__file__).resolve().parent.parent / "data" / "go-kes"


def b64d(text: str) -> bytes:
    return base64.b64decode(text)


def policy_block(identity: str, allow: list[str]) -> str:
    rules = "".join(f"\n      - {rule}" for rule in allow)
    return f"""
policy:
  app:
    allow:{rules}
    identities:
      - {identity}
"""


def test_key_files_written_by_go_kes_are_served_identically(start_server, tmp_path: Path, pki: PKI):
    keys = tmp_path / "keys"
    shutil.copytree(GO_DATA / "keys", keys)
    server = start_server(config_yaml(pki, str(keys)))
    golden = json.loads((GO_DATA / "golden.json").read_text())
    client = server.client("admin")
    for name, expected in golden["keys"].items():
        assert client.describe_key(name) == expected["describe"]
        message = b64d(expected["hmac"]["message"])
        assert client.hmac(name, message) == b64d(expected["hmac"]["hmac"])
    for case in golden["ciphertexts"]:
        plaintext = client.decrypt(case["key"], b64d(case["ciphertext"]), b64d(case["context"]))
        assert plaintext == b64d(case["plaintext"]), case
    # Go files are never rewritten
    for path in (GO_DATA / "keys").iterdir():
        assert (keys / path.name).read_bytes() == path.read_bytes()


def test_legacy_json_key_files_are_served(start_server, tmp_path: Path, pki: PKI):
    keys = tmp_path / "keys"
    shutil.copytree(GO_DATA / "legacy-keys", keys)
    client = start_server(config_yaml(pki, str(keys))).client("admin")
    assert client.describe_key("legacy-aes") == {
        "name": "legacy-aes",
        "algorithm": "AES256",
        "created_at": "2009-11-10T23:00:00Z",
        "created_by": "40235905b7b83e0537a002db523cd019d6709b899adc249c957860cd00fa9f78",
    }
    assert client.describe_key("legacy-chacha")["algorithm"] == "ChaCha20"
    assert client.describe_key("legacy-oldest")["created_at"] == "0001-01-01T00:00:00Z"
    status, _, body = client.request("PUT", "/v1/key/hmac/legacy-aes", {"message": "bQ=="}, None)
    assert (status, json.loads(body)["message"]) == (409, "key does not support HMAC")
    # spec/api.md §8.9 D0 (JSON envelope) and D3 (msgpack) under the all-zero key
    d0 = (
        b'{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==",'
        b'"nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}'
    )
    d3 = b64d(
        "lbFBRVMyNTYtR0NNX1NIQTI1NtkgNjY2ODdhYWRmODYyYmQ3NzZjOGZjMThiOGU5ZjhlMjDEEExv7LAd4oz0SaHZrX5LBu"
        "fEDEKME1ow1CDfUFrqv8QgJuy7Sw+jVqz99TK1HV851LT3K4mwwDv46TB2ngWkAJQ="
    )
    for name in ("legacy-v1", "legacy-oldest"):
        assert client.decrypt(name, d0) == bytes(16)
        assert client.decrypt(name, d3) == bytes(16)
    sealed = client.encrypt("legacy-chacha", b"new data")
    assert client.decrypt("legacy-chacha", sealed) == b"new data"


def test_kes_flask_writes_go_format_files(start_server, tmp_path: Path, pki: PKI):
    keys = tmp_path / "keys"
    client = start_server(config_yaml(pki, str(keys))).client("admin")
    client.create_key("new-key")
    client.import_key("imported", bytes(range(32)), "ChaCha20")
    for name in ("new-key", "imported"):
        path = keys / name
        data = path.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert data.startswith(b"CiQK") and not data.endswith(b"\n")
        version = KeyVersion.parse(data)
        assert version.encode() == data
        assert version.hmac_key is not None
        assert version.created_by == pki["admin"].identity
    assert sorted(os.listdir(keys)) == ["imported", "new-key"]  # no temp files left behind


def test_keys_and_deks_survive_a_restart(start_server, tmp_path: Path, pki: PKI):
    keys = tmp_path / "keys"
    config = config_yaml(pki, str(keys))
    first = start_server(config)
    client = first.client("admin")
    client.create_key("durable")
    dek = client.generate_key("durable", b"ctx")
    mac = client.hmac("durable", b"m")
    client.close()
    assert first.stop() == 0
    second = start_server(config)
    client = second.client("admin")
    assert client.decrypt("durable", dek.ciphertext, b"ctx") == dek.plaintext
    assert client.hmac("durable", b"m") == mac


def test_policy_change_takes_effect_after_sighup(start_server, tmp_path: Path, pki: PKI):
    keys = str(tmp_path / "keys")
    app = pki["app"].identity
    server = start_server(config_yaml(pki, keys, extra=policy_block(app, ["/v1/status"])))
    pids = server.worker_pids()
    client = server.client("app")
    with pytest.raises(KesServerError) as denied:
        client.create_key("after-reload")
    assert denied.value == ErrNotAllowed
    client.close()
    server.config_path.write_text(
        config_yaml(pki, keys, extra=policy_block(app, ["/v1/status", "/v1/key/create/*"]))
    )
    server.reload()
    assert server.process.poll() is None
    assert set(server.worker_pids()).isdisjoint(pids)  # graceful worker replacement
    client = server.client("app")
    client.create_key("after-reload")
    assert client.describe_self()["allow"] == {"/v1/status": {}, "/v1/key/create/*": {}}


def test_invalid_config_on_sighup_keeps_the_old_one_serving(start_server, tmp_path: Path, pki: PKI):
    keys = str(tmp_path / "keys")
    app = pki["app"].identity
    server = start_server(config_yaml(pki, keys, extra=policy_block(app, ["/v1/key/create/*"])))
    pids = server.worker_pids()
    server.config_path.write_text("admin:\n  identity: x\n  identity: y\n")
    server.reload(expect_success=False)
    assert "mapping key" in server.text() or "duplicate" in server.text()
    assert server.worker_pids() == pids  # nothing was restarted
    server.client("app").create_key("still-served")
    # a config that parses but cannot start (missing TLS file) is rejected too
    server.config_path.write_text(
        config_yaml(pki, keys).replace(pki.server_cert, "/nonexistent.crt")
    )
    server.reload(expect_success=False)
    server.client("app").create_key("still-served-2")
    assert server.worker_pids() == pids


def test_predefined_keys_exist_before_the_server_is_ready(start_server, tmp_path: Path, pki: PKI):
    keys = tmp_path / "keys"
    extra = "keys:\n  - name: minio-default-key\n  - name: second-key\n"
    server = start_server(config_yaml(pki, str(keys), extra=extra))
    assert sorted(os.listdir(keys)) == ["minio-default-key", "second-key"]
    info = server.client("admin").describe_key("minio-default-key")
    assert info["created_by"] == pki["admin"].identity
    before = (keys / "minio-default-key").read_bytes()
    server.reload()
    assert (keys / "minio-default-key").read_bytes() == before  # existing keys are kept


def test_delete_in_one_worker_is_seen_by_every_worker(start_server, tmp_path: Path, pki: PKI):
    server = start_server(config_yaml(pki, str(tmp_path / "keys")), workers=2)
    admin = pki["admin"].api_key

    def fresh_client() -> KesClient:
        return KesClient(server.endpoint, api_key=admin, ca_file=pki.server_cert)

    fresh_client().create_key("shared")
    for _ in range(20):  # warm the key into the caches of the workers that accept
        client = fresh_client()
        client.describe_key("shared")
        client.close()
    fresh_client().delete_key("shared")
    for _ in range(20):
        client = fresh_client()
        with pytest.raises(KesServerError) as missing:
            client.describe_key("shared")
        assert missing.value == ErrKeyNotFound
        client.close()


def test_sigterm_stops_master_and_workers(start_server, pki: PKI):
    server = start_server()
    workers = server.worker_pids()
    assert len(workers) == 2
    # Right after start a worker may still be building its runtime: it stops cleanly too.
    assert server.stop(signal.SIGTERM) == 0, server.text()
    assert "Traceback" not in server.text()

    def gone(pid: int) -> bool:
        try:
            return "zombie" in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True

    eventually(lambda: all(gone(pid) for pid in workers))
