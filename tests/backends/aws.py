"""AWS Secrets Manager for the backend-parametrized suites: one moto server per test session."""

from __future__ import annotations

import atexit

import pytest

from tests.fakes.moto import MotoServer

_servers: list[MotoServer] = []
REGION = "us-east-1"


def moto_server(tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    """The session's moto server (started on first use, stopped when the interpreter exits)."""
    if not _servers:
        server = MotoServer(tmp_path_factory.mktemp("moto")).start()
        atexit.register(server.stop)
        _servers.append(server)
    return _servers[0]


def keystore(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A ``keystore:`` section for an empty account, and the environment the server needs."""
    server = moto_server(tmp_path_factory)
    server.reset()
    yaml = f"""keystore:
  aws:
    secretsmanager:
      endpoint: {server.endpoint}
      region: {REGION}
      credentials:
        accesskey: AKIAKESFLASKTEST0001
        secretkey: kes-flask-test-secret-key-do-not-log
        token: kes-flask-test-session-token-do-not-log
"""
    return yaml, {"AWS_CA_BUNDLE": server.tls.ca}
