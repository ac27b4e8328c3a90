"""Keystore backends for the backend-parametrized API suite.

``BACKENDS`` maps a name to a function that, given pytest's ``tmp_path_factory``, starts what
the backend needs (once per session) and returns the YAML text of a ``keystore:`` section for a
fresh, empty store. Tests take the ``keystore_yaml`` fixture (tests/conftest.py), which is
parametrized over this registry. Add a backend by adding a module and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.backends import aws, azure, fs, gcp, vault

Backend = Callable[[pytest.TempPathFactory], str]

BACKENDS: dict[str, Backend] = {
    "fs": fs.keystore,
    "vault-kv1": vault.kv1,
    "vault-kv2": vault.kv2_transit_namespace,
    "azure": azure.keystore,
    "aws": aws.keystore,
    "gcp": gcp.keystore,
}

# What a kes-flask process needs in its environment to reach a backend's test service (the SDKs
# read their own variables: CA bundles, sign-in hosts), by backend kind.
ENVIRONMENTS: dict[str, Callable[[], dict[str, str]]] = {
    "azure": azure.environment,
    "aws": aws.environment,
    "gcp": gcp.environment,
}


# Deleting a missing key is a 404 on some backends and a 200 on others (keystores.md §0.1).
DELETE_MISSING_IS_404 = {"fs": True, "vault": False, "azure": False, "aws": False, "gcp": True}


def environment(keystore_yaml: str) -> dict[str, str]:
    """The environment a server using ``keystore_yaml`` needs (empty for most backends)."""
    return ENVIRONMENTS.get(keystore_kind(keystore_yaml), dict)()


def keystore_kind(keystore_yaml: str) -> str:
    """The backend a ``keystore:`` section configures: fs, vault, azure, aws, gcp, …"""
    import yaml

    section = yaml.safe_load(keystore_yaml)["keystore"]
    return next(iter(section))
