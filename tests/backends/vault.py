"""Vault K/V v1, v2, v2 + transit and v2 in a namespace, all on the session's one OpenBao."""

from __future__ import annotations

import pytest

from tests.backends.openbao import OpenBao, session_server


def server(tmp_path_factory: pytest.TempPathFactory) -> OpenBao:
    return session_server(lambda: tmp_path_factory.mktemp("openbao"))


def kv1(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v1").yaml(bao)


def kv2(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v2", prefix="tenant-1").yaml(bao)


def transit(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v2", transit=True).yaml(bao)


def namespace(tmp_path_factory: pytest.TempPathFactory) -> str:
    bao = server(tmp_path_factory)
    return bao.tenant("v2", namespace="tenant-ns", transit=True).yaml(bao)
