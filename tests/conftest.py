from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.backends import BACKENDS
from tests.backends.openbao import OpenBao, session_server
from tests.interop import peers
from tests.kes_server import PKI, KesServer, config_yaml
from tests.ports import refusing_port


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The upstream versions the interop suite runs against (pytest reads this hook here only)."""
    lines = [f"interop peers: Go KES {peers.KES_VERSION} ({peers.KES_MODULE}/cmd/kes)"]
    if peers.MINIO_VERSION != "off":
        lines.append(f"interop peers: MinIO {peers.MINIO_VERSION} ({peers.MINIO_MODULE})")
    lines.append(f"interop toolchain: {peers.go_version()}; cache {peers.cache_dir()}")
    return lines


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kes_log() -> Iterator[list[logging.LogRecord]]:
    """Every record that reaches the ``kes_flask`` logger during the test, at its own level.

    The app's logging setup makes that logger non-propagating. pytest's ``caplog`` reaches a
    non-propagating logger only if it already was one when the test phase began, so a test that
    builds the process's first app saw nothing with ``caplog`` (``-k`` runs of a single test).
    The app's setup replaces only its own handlers, so this one stays attached.
    """
    handler = _Records()
    logger = logging.getLogger("kes_flask")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A local port where connections are refused for the whole test."""
    with refusing_port() as port:
        yield port


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory, pki: PKI):
    """Start ``kes-flask server`` with a config; every server is stopped at teardown."""
    servers: list[KesServer] = []

    def start(
        config: str | None = None, *, workers: int = 2, wait: bool = True, **kwargs
    ) -> KesServer:
        workdir = tmp_path_factory.mktemp("kes")
        if config is None:
            config = config_yaml(pki, str(workdir / "keys"))
        server = KesServer(workdir, pki, config, workers=workers, **kwargs)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def keystore_yaml(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``keystore:`` section for a fresh, empty store of every registered backend."""
    return BACKENDS[request.param](tmp_path_factory)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> OpenBao:
    """The session's one real OpenBao server (shared with the ``vault-*`` backends)."""
    return session_server(lambda: tmp_path_factory.mktemp("openbao"))
