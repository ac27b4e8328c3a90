"""Vault for the parametrized suites, all on the session's one OpenBao: plain K/V v1, and K/V v2
with a prefix, in a namespace, transit-encrypted (each a fresh mount and AppRole role)."""

from __future__ import annotations

import pytest

from tests.backends.openbao import OpenBao, session_server


def server(tmp_path_factory: pytest.TempPathFactory) -> OpenBao:
    return session_server(lambda: tmp_path_factory.mktemp("openbao"))


def kv1(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v1").yaml(bao)


def kv2_transit_namespace(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v2", namespace="tenant-ns", prefix="tenant-1", transit=True).yaml(bao)
