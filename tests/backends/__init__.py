"""Keystore backends for the backend-parametrized API suite.

``BACKENDS`` maps a name to a function that, given pytest's ``tmp_path_factory``, starts what
the backend needs (once per session) and returns the YAML text of a ``keystore:`` section for a
fresh, empty store. Tests take the ``keystore_yaml`` fixture (tests/conftest.py), which is
parametrized over this registry. Add a backend by adding a module and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.backends import fs, vault

Backend = Callable[[pytest.TempPathFactory], str]

BACKENDS: dict[str, Backend] = {
    "fs": fs.keystore,
    "vault-kv1": vault.kv1,
    "vault-kv2": vault.kv2,
    "vault-transit": vault.transit,
    "vault-namespace": vault.namespace,
}


# Deleting a missing key is a 404 on some backends and a 200 on others (keystores.md §0.1).
DELETE_MISSING_IS_404 = {"fs": True, "vault": False, "azure": False, "aws": False, "gcp": True}


def keystore_kind(keystore_yaml: str) -> str:
    """The backend a ``keystore:`` section configures: fs, vault, azure, aws, gcp, …"""
    import yaml

    section = yaml.safe_load(keystore_yaml)["keystore"]
    return next(iter(section))
