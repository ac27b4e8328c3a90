"""``kes log --audit`` / ``--error`` against kes-flask with 3 workers (streams cover them all).

Go KES's streams deliver nothing since 2024-02 (spec Q2); kes-flask's work. The Go server is
checked too, so the difference stays visible."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from tests.interop.peers import GoCLI, GoKesServer
from tests.kes_server import PKI, KesServer, config_yaml


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    started = {}
    for name in ("go", "flask"):
        workdir = tmp_path_factory.mktemp(f"logs-{name}")
        config = config_yaml(pki, str(workdir / "keys"))
        server = (
            GoKesServer(go_kes, workdir, pki, config)
            if name == "go"
            else KesServer(workdir, pki, config, workers=3)
        )
        started[name] = server.start()
    yield started
    for server in started.values():
        server.stop()


def stream(go_cli: GoCLI, server, pki: PKI, kind: str, seconds: float, action) -> list[dict]:
    """Run ``kes log --<kind> --json`` for ``seconds`` while ``action`` runs; return its events."""
    env_run = {}

    def run() -> None:
        env_run["result"] = go_cli.run(
            "log",
            f"--{kind}",
            "--json",
            server=server.endpoint,
            api_key=str(pki["admin"].api_key),
            timeout=seconds,
        )

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.5)  # the CLI connects and subscribes
    action()
    thread.join()
    return [json.loads(line) for line in env_run["result"].stdout.splitlines() if line.strip()]


def test_audit_stream_shows_key_creation(servers, go_cli: GoCLI, pki: PKI):
    for name, server in servers.items():
        client = server.client("admin")
        events = stream(
            go_cli, server, pki, "audit", 5, lambda c=client, n=name: c.create_key(f"audited-{n}")
        )
        if name == "go":
            assert events == []  # the upstream bug: nothing is ever delivered
        else:
            assert [e["request"]["path"] for e in events] == ["/v1/key/create/audited-flask"]
            assert events[0]["request"]["identity"] == pki["admin"].identity
            assert events[0]["response"]["code"] == 200


def test_error_stream_shows_tls_handshake_failures(servers, go_cli: GoCLI, pki: PKI):
    server = servers["flask"]

    def handshake_without_certificate() -> None:
        context = server.tls_context(None)
        with socket.create_connection(("127.0.0.1", server.port)) as plain:
            try:
                with context.wrap_socket(plain, server_hostname="localhost") as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    events = stream(go_cli, server, pki, "error", 5, handshake_without_certificate)
    assert any("TLS handshake error from 127.0.0.1" in event["message"] for event in events), events


def test_text_form_of_the_audit_stream(servers, go_cli: GoCLI, pki: PKI):
    server = servers["flask"]
    result: dict = {}

    def run() -> None:
        result["r"] = go_cli.run(
            "log", "--audit", server=server.endpoint, api_key=str(pki["admin"].api_key), timeout=5
        )

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.5)
    server.client("admin").create_key("audited-text")
    thread.join()
    assert "/v1/key/create/audited-text" in result["r"].stdout
    assert result["r"].returncode == -1  # the CLI streams until interrupted; the timeout ends it
