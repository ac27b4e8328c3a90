"""``kes-flask migrate`` across real keystores: Go-written keys into every backend and back.

The keys and ciphertexts are the ones the real Go KES v0.24.0 wrote (tests/data/go-kes). A key
migrated FS → backend is stored unchanged, a second run overwrites nothing, the migrated store
serves the Go ciphertexts and HMACs through a real kes-flask server, and migrating it back to a
fresh directory gives the original files byte for byte.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from kes_flask.cli.main import main
from kes_flask.config.loader import load_config
from kes_flask.keystore import open_keystore
from tests.backends import BACKENDS, environment
from tests.kes_server import PKI, config_yaml

GO_KES = Path(__file__).resolve().parent.parent / "data" / "go-kes"
GOLDEN = json.loads((GO_KES / "golden.json").read_text())


@pytest.fixture(scope="module", params=sorted(name for name in BACKENDS if name != "fs"))
def target_keystore(request: pytest.FixtureRequest, tmp_path_factory) -> str:
    return BACKENDS[request.param](tmp_path_factory)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _migrate(capsys: pytest.CaptureFixture[str], source: str, target: str) -> dict:
    code = main(["migrate", "--from", source, "--to", target, "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_go_keys_migrate_into_the_backend_and_back_unchanged(
    tmp_path: Path, pki: PKI, target_keystore: str, start_server, capsys, monkeypatch
):
    env = environment(target_keystore)  # e.g. the CA bundle of a cloud backend's test service
    for name, value in env.items():  # for the in-process migrate, as for the server below
        monkeypatch.setenv(name, value)
    originals = {path.name: path.read_bytes() for path in (GO_KES / "keys").iterdir()}
    shutil.copytree(GO_KES / "keys", tmp_path / "source")
    source = _write(tmp_path / "source.yml", config_yaml(pki, str(tmp_path / "source")))
    target_text = config_yaml(pki, keystore=target_keystore)
    target = _write(tmp_path / "target.yml", target_text)
    back = _write(tmp_path / "back.yml", config_yaml(pki, str(tmp_path / "back")))

    report = _migrate(capsys, source, target)
    assert sorted(report["migrated_keys"]) == sorted(originals) and report["skipped"] == 0
    store = open_keystore(load_config(target).keystore)
    try:
        assert {name: store.get(name) for name in originals} == originals
    finally:
        store.close()

    again = _migrate(capsys, source, target)
    assert again["migrated"] == 0 and sorted(again["skipped_keys"]) == sorted(originals)

    server = start_server(target_text, env=env)
    with server.client("admin") as client:
        for name, recorded in GOLDEN["keys"].items():
            described = client.describe_key(name)
            assert described["created_at"] == recorded["describe"]["created_at"]
            message = base64.b64decode(recorded["hmac"]["message"])
            assert client.hmac(name, message) == base64.b64decode(recorded["hmac"]["hmac"])
        for entry in GOLDEN["ciphertexts"]:
            if entry["key"] not in originals:
                continue
            plaintext = client.decrypt(
                entry["key"],
                base64.b64decode(entry["ciphertext"]),
                base64.b64decode(entry["context"]),
            )
            assert plaintext == base64.b64decode(entry["plaintext"])

    report = _migrate(capsys, target, back)
    assert sorted(report["migrated_keys"]) == sorted(originals)
    assert {p.name: p.read_bytes() for p in (tmp_path / "back").iterdir()} == originals


def test_doctor_reports_an_unreachable_vault_and_a_reachable_one(
    tmp_path: Path, pki: PKI, tmp_path_factory, capsys, dead_port: int
):
    section = BACKENDS["vault-kv2"](tmp_path_factory)
    good = _write(tmp_path / "good.yml", config_yaml(pki, keystore=section))
    assert main(["doctor", "--config", good, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [keystore] = [c for c in report["checks"] if c["area"] == "keystore"]
    assert keystore["status"] == "ok" and "reachable in" in keystore["message"]

    endpoint = next(line for line in section.splitlines() if "endpoint:" in line)
    dead = section.replace(endpoint, f"    endpoint: https://127.0.0.1:{dead_port}")
    bad = _write(tmp_path / "bad.yml", config_yaml(pki, keystore=dead))
    assert main(["doctor", "--config", bad, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    [failure] = [c for c in report["checks"] if c["status"] == "fail"]
    assert failure["area"] == "keystore" and report["minio_works"] is False
    assert "vault" in failure["message"]
