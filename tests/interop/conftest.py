"""Interop suite: runs whenever ``go`` is installed (it builds the Go peers), else skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop import peers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    interop = Path(__file__).parent
    for item in items:
        if interop in Path(item.fspath).parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def go_kes() -> Path:
    if peers.go_binary() is None:
        pytest.skip("go is not installed: the interop suite builds the Go KES peer with it")
    return peers.build_kes()  # a build failure with go present is an error, never a skip


@pytest.fixture(scope="session")
def go_cli(go_kes: Path) -> peers.GoCLI:
    return peers.GoCLI(go_kes)


@pytest.fixture(scope="session")
def minio_binary(go_kes: Path) -> Path:
    if peers.MINIO_VERSION == "off":
        pytest.skip("MinIO interop disabled by KES_FLASK_INTEROP_MINIO=off")
    return peers.build_minio()
