"""Start-up messages an operator acts on: expiring certificates, readable keys, bad paths."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

from kes_flask.auth.certs import certificate_pem, private_key_pem
from kes_flask.config.model import TLSConfig
from kes_flask.server.startup import tls_warnings
from tests.certificates import make_certificate


def write_pair(directory: Path, days: int, expired: bool = False, mode: int = 0o600) -> TLSConfig:
    key, cert = make_certificate("server", dns=["localhost"], days=days, expired=expired)
    (directory / "s.crt").write_bytes(certificate_pem(cert))
    (directory / "s.key").write_bytes(private_key_pem(key))
    (directory / "s.key").chmod(mode)
    return TLSConfig(key=str(directory / "s.key"), cert=str(directory / "s.crt"))


def test_a_valid_certificate_and_a_private_key_give_no_warning(tmp_path: Path):
    assert tls_warnings(write_pair(tmp_path, days=90)) == []


def test_a_certificate_expiring_within_30_days_is_announced(tmp_path: Path):
    (warning,) = tls_warnings(write_pair(tmp_path, days=10))
    assert warning.startswith(f"tls.cert: the server certificate '{tmp_path / 's.crt'}' expires in")
    assert "day(s)" in warning and "renew it" in warning


def test_an_expired_certificate_is_announced(tmp_path: Path):
    (warning,) = tls_warnings(write_pair(tmp_path, days=1, expired=True))
    assert "expired on" in warning and "replace the file" in warning


def test_a_certificate_is_judged_against_the_clock(tmp_path: Path):
    tls = write_pair(tmp_path, days=90)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=80)
    assert "expires in" in tls_warnings(tls, now=later)[0]


def test_a_private_key_readable_by_others_says_what_to_run(tmp_path: Path):
    tls = write_pair(tmp_path, days=90, mode=0o644)
    (warning,) = tls_warnings(tls)
    assert warning == (
        f"tls.key: the private key '{tls.key}' is accessible by group and others (mode 0644): "
        f"run 'chmod 600 {tls.key}'"
    )
    Path(tls.key).chmod(0o640)
    assert "accessible by group (mode 0640)" in tls_warnings(tls)[0]


def run_server(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kes_flask", "server", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_keystore_path_that_cannot_be_created_is_a_message_not_a_traceback(tmp_path: Path):
    tls = write_pair(tmp_path, days=90)
    config = tmp_path / "config.yml"
    config.write_text(
        f"admin:\n  identity: disabled\ntls:\n  key: {tls.key}\n  cert: {tls.cert}\n"
        "keystore:\n  fs:\n    path: /proc/self/kes-flask-keys\n"
    )
    result = run_server(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "Error: keystore.fs.path: cannot create the directory '/proc/self/kes-flask-keys'"
        in result.stderr
    )


def test_an_unknown_key_is_shown_with_the_load_error(tmp_path: Path):
    config = tmp_path / "config.yml"
    config.write_text("admin:\n  identity: disabled\ntsl:\n  key: k\n  cert: c\n")
    result = run_server(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "Error: kesconf: invalid tls config: no private key",
        f"note: {config}: line 3: unknown key 'tsl' (ignored)",
    ]


def test_a_worker_that_cannot_open_the_keystore_says_why_without_a_traceback(
    tmp_path: Path, capsys
):
    import pytest

    from kes_flask.config import parse_config
    from kes_flask.server.gunicorn_app import KesApplication, ServerOptions
    from kes_flask.server.startup import prepare

    tls = write_pair(tmp_path, days=90)
    keys = tmp_path / "keys"
    text = (
        f"admin:\n  identity: disabled\ntls:\n  key: {tls.key}\n  cert: {tls.cert}\n"
        f"keystore:\n  fs:\n    path: {keys}\n"
    )
    state = prepare(parse_config(text, {}, "config.yml"), "127.0.0.1:0")
    application = KesApplication(state, ServerOptions())
    keys.rmdir()
    keys.write_text("")  # the directory was replaced by a file before the worker booted
    with pytest.raises(SystemExit) as info:
        application.load()
    assert info.value.code == 3  # gunicorn's WORKER_BOOT_ERROR: the master stops with a reason
    assert "Error: keystore.fs.path:" in capsys.readouterr().err


def test_key_files_readable_by_others_are_announced(tmp_path: Path):
    from kes_flask.server.startup import key_directory_warnings

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    keys.chmod(0o700)
    (keys / "private").write_text("x")
    (keys / "private").chmod(0o600)
    assert key_directory_warnings(str(keys)) == []
    (keys / "shared").write_text("x")
    (keys / "shared").chmod(0o644)
    keys.chmod(0o777)
    first, second = key_directory_warnings(str(keys))
    assert first.startswith(f"keystore.fs.path: the key directory '{keys}' is accessible by")
    assert second == (
        f"keystore.fs.path: 1 key file(s) in '{keys}' are readable by other users (shared): "
        f"run 'chmod 600 {keys}/*'"
    )
