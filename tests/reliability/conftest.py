"""The fault-injection harness: real ``kes-flask server`` processes, figures, and the log of
every server of the run (scanned for secrets by ``test_zz_no_secrets_in_logs.py``)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kes_flask.crypto import KeyVersion
from tests.kes_server import PKI, KesServer


@dataclass
class RunRecord:
    """What the reliability run saw: figures for docs/reliability.md, logs, and secrets."""

    figures: dict[str, dict[str, object]] = field(default_factory=dict)
    servers: list[KesServer] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    keystores: list[Path] = field(default_factory=list)

    def figure(self, test: str, **values: object) -> None:
        self.figures.setdefault(test, {}).update(values)

    def secret(self, value: bytes | str) -> None:
        """Remember a secret in every spelling a log line could carry it."""
        if isinstance(value, str):
            value = value.encode()
        if len(value) < 8:
            return  # too short to find without false alarms
        self.secrets.add(value.decode("latin-1"))
        self.secrets.add(value.hex())
        self.secrets.add(base64.b64encode(value).decode().rstrip("="))
        self.secrets.add(base64.urlsafe_b64encode(value).decode().rstrip("="))

    def key_material(self) -> None:
        """Every key in every keystore of the run (read at the end: keys created by requests)."""
        for directory in self.keystores:
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                try:
                    version = KeyVersion.parse(path.read_bytes())
                except Exception:  # noqa: S112 - probe and partial files are not keys
                    continue
                self.secret(version.secret_key._key)
                if version.hmac_key is not None:
                    self.secret(version.hmac_key._key)

    def log_lines(self) -> list[str]:
        lines = []
        for server in self.servers:
            with server._lock:
                lines += server.stdout + server.stderr
        return lines


_RECORD = RunRecord()


@pytest.fixture(scope="session")
def run_record(pki: PKI) -> RunRecord:
    for identity in pki.identities.values():
        if identity.api_key is not None:
            _RECORD.secret(str(identity.api_key))
    for key_file in [pki.server_key, *(i.key_file for i in pki.identities.values())]:
        pem = Path(key_file).read_text()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        _RECORD.secret(body[24:64])  # past the ASN.1 header every key of a type shares
        _RECORD.secret(body[-40:])
    return _RECORD


@pytest.fixture(scope="package", autouse=True)
def record_every_server(run_record: RunRecord):
    """Every ``KesServer`` started by a test of this package — through a fixture or directly —
    is remembered with its keystore, so the log scan sees every line of the run."""
    original = KesServer.start

    def start(self: KesServer, *args, **kwargs) -> KesServer:
        if self not in run_record.servers:
            run_record.servers.append(self)
            run_record.keystores.append(self.workdir / "keys")
        return original(self, *args, **kwargs)

    KesServer.start = start  # type: ignore[method-assign]
    yield
    KesServer.start = original  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter) -> None:
    if not _RECORD.figures:
        return
    terminalreporter.section("reliability figures")
    for test, values in _RECORD.figures.items():
        terminalreporter.write_line(f"{test}: {json.dumps(values, sort_keys=True)}")
