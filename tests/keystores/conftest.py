from __future__ import annotations

import pytest

from tests.backends.aws import moto_server
from tests.backends.gcp import fake_secret_manager
from tests.fakes.moto import MotoServer


@pytest.fixture
def moto(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The session's moto server, emptied, and trusted by boto3 through AWS_CA_BUNDLE."""
    server = moto_server(tmp_path_factory)
    server.reset()
    monkeypatch.setenv("AWS_CA_BUNDLE", server.tls.ca)
    return server


@pytest.fixture
def gcp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """The session's Secret Manager fake, emptied, trusted through REQUESTS_CA_BUNDLE."""
    fake, account = fake_secret_manager(tmp_path_factory)
    fake.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.tls.ca)
    return fake, account
