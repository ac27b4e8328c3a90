"""Keystores: where encoded keys live (one module per backend behind ``base.Keystore``)."""

from __future__ import annotations

from kes_flask.config.errors import ConfigError
from kes_flask.config.model import FSKeystoreConfig, KeystoreConfig, MemoryKeystoreConfig
from kes_flask.keystore.base import Keystore, KeystoreError


def open_keystore(config: KeystoreConfig) -> Keystore:
    """Connect the configured backend; ``ConfigError`` when it cannot be used."""
    if isinstance(config, FSKeystoreConfig):
        from kes_flask.keystore.fs import FSKeystore

        try:
            return FSKeystore(config.path)
        except KeystoreError as err:
            raise ConfigError(str(err)) from None
    if isinstance(config, MemoryKeystoreConfig):
        from kes_flask.keystore.memory import MemoryKeystore

        return MemoryKeystore()
    raise ConfigError(
        f"keystore '{config.kind}' is not supported by this version of kes-flask yet "
        "(supported: fs)"
    )
