"""``kes log --audit`` / ``--error`` against kes-flask with 3 workers (streams cover them all).

Go KES's streams deliver nothing since 2024-02 (spec Q2); kes-flask's work. The Go server is
checked too, so the difference stays visible."""

from __future__ import annotations

import itertools
import json
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
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


class LogCLI:
    """``kes log <args>`` (the Go CLI) running against ``server``; its stdout lines as they come.

    The CLI needs a moment to connect and subscribe, longer on a busy machine: callers poke
    the server until an event shows, instead of sleeping and acting once."""

    def __init__(self, go_cli: GoCLI, server, pki: PKI, *args: str) -> None:
        api_key = str(pki["admin"].api_key)
        argv, env = go_cli.command("log", *args, server=server.endpoint, api_key=api_key)
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip():
                self.lines.append(line.rstrip("\n"))

    def wait_for(
        self, match: Callable[[str], bool], poke: Callable[[], None] = lambda: None,
        timeout: float = 60.0,
    ) -> str:  # fmt: skip
        """The first line that ``match``es, calling ``poke()`` every half second until then."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.lines if match(line)), None)
            if found is not None:
                return found
            assert self.process.poll() is None, self.process.stderr.read()
            assert time.monotonic() < deadline, f"no such line within {timeout}s: {self.lines}"
            poke()
            time.sleep(0.5)

    def stop(self) -> bool:
        """Interrupt the CLI; whether it was still streaming until then."""
        streaming = self.process.poll() is None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        return streaming


PROBE = "/v1/key/create/probe-"


def test_audit_stream_shows_key_creation(servers, go_cli: GoCLI, pki: PKI):
    probes = itertools.count()
    go = servers["go"].client("admin")
    log = LogCLI(go_cli, servers["go"], pki, "--audit", "--json")
    try:  # the upstream bug: nothing is ever delivered
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            go.create_key(f"probe-go-{next(probes)}")
            time.sleep(0.5)
        go.create_key("audited-go")
        time.sleep(1)
    finally:
        log.stop()
    assert log.lines == []

    flask = servers["flask"].client("admin")
    log = LogCLI(go_cli, servers["flask"], pki, "--audit", "--json")
    try:
        log.wait_for(lambda line: PROBE in line, lambda: flask.create_key(f"probe-{next(probes)}"))
        flask.create_key("audited-flask")
        line = log.wait_for(lambda line: "/v1/key/create/audited-flask" in line)
    finally:
        log.stop()
    events = [json.loads(line) for line in log.lines]
    audited = [e for e in events if not e["request"]["path"].startswith(PROBE)]
    assert [e["request"]["path"] for e in audited] == ["/v1/key/create/audited-flask"]
    assert json.loads(line) == audited[0]
    assert audited[0]["request"]["identity"] == pki["admin"].identity
    assert audited[0]["response"]["code"] == 200


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

    log = LogCLI(go_cli, server, pki, "--error", "--json")
    try:
        line = log.wait_for(lambda text: "handshake error" in text, handshake_without_certificate)
    finally:
        log.stop()
    assert "TLS handshake error from 127.0.0.1" in json.loads(line)["message"], log.lines


def test_text_form_of_the_audit_stream(servers, go_cli: GoCLI, pki: PKI):
    server = servers["flask"]
    client = server.client("admin")
    probes = itertools.count()
    log = LogCLI(go_cli, server, pki, "--audit")
    try:
        log.wait_for(
            lambda line: "/v1/key/create/probe-text-" in line,
            lambda: client.create_key(f"probe-text-{next(probes)}"),
        )
        client.create_key("audited-text")
        line = log.wait_for(lambda line: "/v1/key/create/audited-text" in line)
    finally:
        streaming = log.stop()
    assert not line.lstrip().startswith("{")  # the text form, not JSON
    assert streaming  # the CLI streams until interrupted
