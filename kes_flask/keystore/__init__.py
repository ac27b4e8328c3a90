"""Keystores: where encoded keys live (one module per backend behind ``base.Keystore``)."""

from __future__ import annotations

from kes_flask.config.errors import ConfigError
from kes_flask.config.model import (
    AWSKeystoreConfig,
    AzureKeystoreConfig,
    FSKeystoreConfig,
    GCPKeystoreConfig,
    KeystoreConfig,
    MemoryKeystoreConfig,
    VaultKeystoreConfig,
)
from kes_flask.keystore.base import Keystore, KeystoreError


def open_keystore(config: KeystoreConfig, *, probe: bool = False) -> Keystore:
    """Connect the configured backend; ``ConfigError`` when it cannot be used.

    ``probe`` (the master at start-up) also runs ``status()`` as Go KES does on connect, so an
    unreachable cloud service stops start-up. Workers do not probe: a worker restarted during an
    outage must come up and serve cached keys rather than fail to boot.
    """
    if isinstance(config, FSKeystoreConfig):
        from kes_flask.keystore.fs import FSKeystore

        try:
            return FSKeystore(config.path)
        except KeystoreError as err:
            raise ConfigError(str(err)) from None
    if isinstance(config, MemoryKeystoreConfig):
        from kes_flask.keystore.memory import MemoryKeystore

        return MemoryKeystore()
    if isinstance(config, AWSKeystoreConfig | GCPKeystoreConfig):
        return _connect_cloud(config, probe)
    if isinstance(config, AzureKeystoreConfig):
        from kes_flask.keystore.azure import AzureKeystore

        return AzureKeystore(config)  # like Go KES, connecting does not contact Azure
    if isinstance(config, VaultKeystoreConfig):
        from kes_flask.keystore.vault import VaultKeystore

        try:
            # The master (probe) must log in: a refused login stops start-up or a reload. A
            # worker booting during a Vault outage comes up and keeps trying instead.
            return VaultKeystore(config, login_required=probe)
        except KeystoreError as err:
            raise ConfigError(str(err)) from None
    raise ConfigError(
        f"keystore '{config.kind}' is not supported by this version of kes-flask yet "
        "(supported: fs, vault, aws, gcp, azure)"
    )


def _connect_cloud(config: AWSKeystoreConfig | GCPKeystoreConfig, probe: bool) -> Keystore:
    store: Keystore
    if isinstance(config, AWSKeystoreConfig):
        from kes_flask.keystore.aws import AWSKeystore

        store = AWSKeystore(config)
    else:
        from kes_flask.keystore.gcp import GCPKeystore

        try:
            store = GCPKeystore(config)
        except KeystoreError as err:
            raise ConfigError(str(err)) from None
    if probe:
        try:
            store.status()
        except KeystoreError as err:
            store.close()
            raise ConfigError(f"failed to connect to {store.description}: {err}") from None
    return store
