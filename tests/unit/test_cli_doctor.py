"""``kes-flask doctor``: the verdict and the fix for the mistakes operators make most."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kes_flask.auth.certs import certificate_pem, private_key_pem
from kes_flask.cli.main import main
from tests.certificates import make_certificate
from tests.kes_server import PKI, config_yaml

MINIO_POLICY = """
policy:
  minio:
    allow:
    - /v1/key/create/minio-*
    - /v1/key/generate/minio-*
    - /v1/key/decrypt/minio-*
    - /v1/key/describe/minio-*
    - /v1/key/list/*
    - /v1/status
{deny}    identities:
    - {identity}
"""


def _config(tmp_path: Path, pki: PKI, policy: str, *, store: str = "") -> str:
    text = config_yaml(pki, store or str(tmp_path / "keys"), extra=policy)
    path = tmp_path / "config.yml"
    path.write_text(text)
    return str(path)


def _policy(pki: PKI, *, drop: str = "", deny: str = "") -> str:
    text = MINIO_POLICY.format(
        identity=pki["app"].identity, deny=f"    deny:\n    - {deny}\n" if deny else ""
    )
    return "\n".join(line for line in text.splitlines() if not drop or drop not in line)


def _doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def _json(capsys, *argv: str) -> tuple[int, dict]:
    code, out = _doctor(capsys, *argv, "--json")
    return code, json.loads(out)


def test_a_correct_minio_policy_passes(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki))
    code, out = _doctor(capsys, "--config", config, "--cert", pki["app"].cert_file)
    assert code == 0, out
    assert "MinIO would work with this server." in out
    assert "policy 'minio' allows everything MinIO calls for key 'minio-default-key'" in out
    code, report = _json(capsys, "--config", config, "--api-key", str(pki["app"].api_key))
    assert code == 0 and report["minio_works"] is True
    assert report["identity"] == pki["app"].identity and report["policy"] == "minio"
    assert all(path["allowed"] for path in report["paths"])
    assert not [c for c in report["checks"] if c["status"] == "fail"]
    assert {c["area"] for c in report["checks"] if c["status"] == "ok"} >= {"config", "keystore"}


def _server_files(tmp_path: Path, **certificate) -> tuple[Path, Path]:
    key, cert = make_certificate("kes", **certificate)
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(certificate_pem(cert))
    key_file.write_bytes(private_key_pem(key))
    key_file.chmod(0o600)
    return cert_file, key_file


def _with_server_files(config: str, pki: PKI, cert_file: Path, key_file: Path) -> str:
    text = Path(config).read_text()
    text = text.replace(f"cert: {pki.server_cert}", f"cert: {cert_file}")
    Path(config).write_text(text.replace(f"key: {pki.server_key}", f"key: {key_file}"))
    return config


def test_a_certificate_valid_for_a_year_is_ok(tmp_path, pki, capsys):
    cert_file, key_file = _server_files(tmp_path, ips=["127.0.0.1"], days=365)
    config = _with_server_files(_config(tmp_path, pki, _policy(pki)), pki, cert_file, key_file)
    code, report = _json(capsys, "--config", config)
    assert code == 0
    [tls] = [c for c in report["checks"] if c["area"] == "tls"]
    assert tls["status"] == "ok" and tls["message"].endswith(", names: 127.0.0.1")


def test_a_certificate_expiring_within_30_days_warns(tmp_path, pki, capsys):
    cert_file, key_file = _server_files(tmp_path, dns=["kes.local"], days=10)
    config = _with_server_files(_config(tmp_path, pki, _policy(pki)), pki, cert_file, key_file)
    code, out = _doctor(capsys, "--config", config)
    assert code == 0
    assert (
        f"[warn] tls      tls.cert: the server certificate '{cert_file}' expires in 9 day(s)" in out
    )


def test_a_certificate_without_names_fails(tmp_path, pki, capsys):
    cert_file, key_file = _server_files(tmp_path, days=365)
    config = _with_server_files(_config(tmp_path, pki, _policy(pki)), pki, cert_file, key_file)
    code, out = _doctor(capsys, "--config", config)
    assert code == 1
    assert "has no subject alternative names: MinIO and other Go clients refuse it" in out


def test_a_policy_missing_decrypt_fails_with_the_yaml_to_add(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki, drop="/v1/key/decrypt/"))
    code, out = _doctor(
        capsys, "--config", config, "--identity", pki["app"].identity, "--key-name", "minio-sse"
    )
    assert code == 1
    assert "[FAIL] policy   MinIO needs /v1/key/decrypt/minio-sse" in out
    assert "no allow rule of policy 'minio' matches" in out
    # the policy grants generate/create on minio-*, so the fix covers the same keys
    assert "    allow:\n                    - /v1/key/decrypt/minio-*\n" in out
    assert "MinIO would NOT work" in out


def test_a_deny_that_shadows_minios_key_is_named(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki, deny="/v1/key/generate/minio-default-*"))
    code, report = _json(capsys, "--config", config, "--identity", pki["app"].identity)
    assert code == 1 and report["minio_works"] is False
    failures = [c for c in report["checks"] if c["status"] == "fail"]
    assert len(failures) == 1
    assert "/v1/key/generate/minio-default-key" in failures[0]["message"]
    assert (
        "deny rule '/v1/key/generate/minio-default-*' of policy 'minio'" in failures[0]["message"]
    )
    assert failures[0]["fix"] == (
        "remove or narrow '- /v1/key/generate/minio-default-*' under policy.minio.deny"
    )


def test_an_identity_without_policy_gets_a_whole_policy_to_paste(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki))
    code, out = _doctor(capsys, "--config", config, "--cert", pki["stranger"].cert_file)
    assert code == 1
    assert f"identity {pki['stranger'].identity} is assigned to no policy" in out
    assert f"- {pki['stranger'].identity}" in out


def test_an_unusable_keystore_fails(tmp_path, pki, capsys):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    config = _config(tmp_path, pki, _policy(pki), store=str(not_a_directory))
    code, report = _json(capsys, "--config", config)
    assert code == 1
    [failure] = [c for c in report["checks"] if c["status"] == "fail"]
    assert failure["area"] == "keystore" and "is not a directory" in failure["message"]


def test_an_expired_server_certificate_fails_with_the_file_to_replace(tmp_path, pki, capsys):
    cert_file, key_file = _server_files(tmp_path, ips=["127.0.0.1"], days=1, expired=True)
    config = _with_server_files(_config(tmp_path, pki, _policy(pki)), pki, cert_file, key_file)
    code, out = _doctor(capsys, "--config", config)
    assert code == 1
    assert f"[FAIL] tls      tls.cert: the server certificate '{cert_file}' expired on " in out
    assert "replace the file with a renewed certificate" in out


def test_a_certificate_and_key_that_do_not_match_fail(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki))
    Path(config).write_text(
        Path(config).read_text().replace(f"key: {pki.server_key}", f"key: {pki['app'].key_file}")
    )
    code, out = _doctor(capsys, "--config", config)
    assert code == 1
    assert f"tls.key: the private key does not belong to certificate '{pki.server_cert}'" in out


def test_key_files_readable_by_others_warn_with_chmod(tmp_path, pki, capsys):
    store = tmp_path / "keys"
    store.mkdir()
    (store / "minio-default-key").write_text("{}")
    (store / "minio-default-key").chmod(0o644)
    (store / "private").write_text("{}")
    (store / "private").chmod(0o600)
    cert_file, key_file = _server_files(tmp_path, ips=["127.0.0.1"], days=365)
    config = _with_server_files(
        _config(tmp_path, pki, _policy(pki), store=str(store)), pki, cert_file, key_file
    )
    code, report = _json(capsys, "--config", config, "--identity", pki["app"].identity)
    assert code == 0 and report["minio_works"] is True
    [warning] = [c for c in report["checks"] if c["status"] == "warn"]
    assert "1 key file(s) in" in warning["message"] and "minio-default-key" in warning["message"]
    assert warning["fix"] == f"run 'chmod 600 {store}/*'"


def test_an_invalid_config_names_the_problem(tmp_path, pki, capsys):
    config = tmp_path / "broken.yml"
    config.write_text(config_yaml(pki, str(tmp_path / "k")).replace("tls:", "tsl:"))
    code, report = _json(capsys, "--config", str(config))
    assert code == 1
    [failure] = [c for c in report["checks"] if c["status"] == "fail"]
    assert failure["area"] == "config" and str(config) in failure["message"]


def test_only_one_identity_option(tmp_path, pki, capsys):
    config = _config(tmp_path, pki, _policy(pki))
    code = main(["doctor", "--config", config, "--identity", "a" * 64, "--cert", "x"])
    _, err = capsys.readouterr()
    assert code == 2 and "use only one of --identity, --cert and --api-key" in err
