"""A bad configuration never half-starts: the process exits 1 with ``Error: <what is wrong>``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kes_flask.auth.certs import certificate_pem, private_key_pem
from tests.certificates import make_certificate
from tests.kes_server import PKI, config_yaml, free_port

pytestmark = pytest.mark.e2e


def run_server(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(config)
    return kes_flask(
        tmp_path, "server", "--config", str(path), "--addr", f"127.0.0.1:{free_port()}", *args
    )


def kes_flask(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kes_flask", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=30)


def base(pki: PKI, tmp_path: Path, extra: str = "") -> str:
    return config_yaml(pki, str(tmp_path / "keys"), extra=extra)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c, p: c + "policy:\n  a:\n    allow: [x]\n  a:\n    allow: [y]\n",
            "already defined",
        ),
        (
            lambda c, p: c.replace("admin:", "admins:"),
            "kesconf: invalid admin identity: no admin identity",
        ),
        (lambda c, p: c.replace(p.server_cert, "/does/not/exist.crt"), "/does/not/exist.crt"),
        (lambda c, p: c + "cache:\n  expiry:\n    any: 1d\n", "cache.expiry.any"),
        (lambda c, p: c + "api:\n  /v1/status:\n    skip_auth: maybe\n", "skip_auth"),
        (
            lambda c, p: c.replace(
                "fs:",
                "vault:\n    endpoint: https://127.0.0.1:8200\n    approle:\n"
                "      id: a\n      secret: b\n  unused:",
            ),
            "vault: authentication failed at auth/approle/login: cannot connect to Vault",
        ),
        (lambda c, p: c + "policy:\n  bad.name:\n    allow: [x]\n", "kes: policy name 'bad.name'"),
        (lambda c, p: c.replace("tls:\n", "tls:\n  auth: maybe\n"), "invalid auth 'maybe'"),
    ],
)
def test_invalid_configurations_fail_cleanly(tmp_path: Path, pki: PKI, mutate, expected):
    config = mutate(base(pki, tmp_path), pki)
    result = run_server(tmp_path, config)
    assert result.returncode == 1, result.stderr
    assert "Error:" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "Server is up and running" not in result.stdout


def test_identity_in_two_policies_is_rejected(tmp_path: Path, pki: PKI):
    identity = pki["app"].identity
    extra = f"policy:\n  one:\n    identities: [{identity}]\n  two:\n    identities: [{identity}]\n"
    result = run_server(tmp_path, base(pki, tmp_path, extra))
    assert result.returncode == 1
    assert (
        f"kes: cannot assign policy 'two' to '{identity}': identity already has a policy"
        in result.stderr
    )


def test_hostname_address_is_rejected(tmp_path: Path, pki: PKI):
    (tmp_path / "config.yml").write_text(base(pki, tmp_path, "address: localhost:7373\n"))
    result = kes_flask(tmp_path, "server", "--config", "config.yml")
    assert result.returncode == 1
    assert "Error: 'localhost' is not a valid IP address" in result.stderr


def test_toml_config_explains_how_to_convert(tmp_path: Path, pki: PKI):
    toml = (
        """address = "127.0.0.1:7373"\n\n[tls]\nkey = "./kes-tls.key"\ncert = "./kes-tls.crt"\n"""
    )
    (tmp_path / "kes-config.toml").write_text(toml)
    result = kes_flask(tmp_path, "server", "--config", "kes-config.toml")
    assert result.returncode == 1
    assert "TOML" in result.stderr and "migrate-config" in result.stderr


def test_certificate_without_san_is_rejected(tmp_path: Path, pki: PKI):
    key, cert = make_certificate("localhost")  # no SubjectAltName
    (tmp_path / "nosan.crt").write_bytes(certificate_pem(cert))
    (tmp_path / "nosan.key").write_bytes(private_key_pem(key))
    config = base(pki, tmp_path).replace(pki.server_cert, str(tmp_path / "nosan.crt"))
    config = config.replace(pki.server_key, str(tmp_path / "nosan.key"))
    result = run_server(tmp_path, config)
    assert result.returncode == 1
    assert "certificate does not contain any DNS or IP address as SAN" in result.stderr


def test_dev_and_config_are_exclusive(tmp_path: Path):
    result = kes_flask(tmp_path, "server", "--dev", "--config", "x.yml")
    assert result.returncode == 1
    assert "Error: '--config' flag is not supported in development mode" in result.stderr


def test_missing_config_file(tmp_path: Path):
    result = kes_flask(tmp_path, "server", "--config", "nope.yml")
    assert result.returncode == 1
    assert "nope.yml" in result.stderr and "Traceback" not in result.stderr


def test_address_in_use_fails_at_once(tmp_path: Path, pki: PKI):
    import socket
    import time

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "config.yml").write_text(base(pki, tmp_path))
        started = time.monotonic()
        result = kes_flask(
            tmp_path, "server", "--config", "config.yml", "--addr", f"127.0.0.1:{port}"
        )
        assert time.monotonic() - started < 15  # no 5-second gunicorn retry loop
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"Error: listen tcp 127.0.0.1:{port}: bind: address already in use"
    )
