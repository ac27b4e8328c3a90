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


ACCESS_KEY = "AKIAKESFLASKTEST0001"
SECRET_KEY = "kes-flask-test-secret-key-do-not-log"
SESSION_TOKEN = "kes-flask-test-session-token-do-not-log"
SECRETS = (SECRET_KEY, SESSION_TOKEN)  # must never appear in any output


def section(endpoint: str) -> str:
    return f"""keystore:
  aws:
    secretsmanager:
      endpoint: {endpoint}
      region: {REGION}
      credentials:
        accesskey: {ACCESS_KEY}
        secretkey: {SECRET_KEY}
        token: {SESSION_TOKEN}
"""


def keystore(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``keystore:`` section for an empty account (moto is reset)."""
    server = moto_server(tmp_path_factory)
    server.reset()
    return section(server.endpoint)


def environment() -> dict[str, str]:
    """What a kes-flask process needs to trust moto's certificate (boto3's AWS_CA_BUNDLE)."""
    return {"AWS_CA_BUNDLE": _servers[0].tls.ca} if _servers else {}
