"""What the gunicorn master does before any worker serves a request (config.md §9).

Everything that can fail is checked here, in the master, so a bad configuration never
half-starts: policies, TLS files, the listen address, the keystore, and the pre-defined keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kes_flask.auth.names import valid_name
from kes_flask.auth.policy import PolicySet
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import DEFAULT_ADDRESS, ServerConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import KeyExistsError, Keystore, KeystoreError
from kes_flask.server.address import parse_listen_address
from kes_flask.server.tls import TLSContextProvider

log = logging.getLogger("kes_flask.server")


@dataclass
class ServerState:
    config: ServerConfig
    tls: TLSContextProvider
    host: str
    port: int
    keystore_description: str


def prepare(config: ServerConfig, address: str = "") -> ServerState:
    """Validate and connect everything; raise ``ConfigError`` with the first problem."""
    for warning in config.warnings:
        log.warning("%s", warning)
    PolicySet.from_config(config)
    host, port = parse_listen_address(address or config.address or DEFAULT_ADDRESS)
    tls = TLSContextProvider(config.tls, optional_client_certificate=config.any_skip_auth)
    store = open_keystore(config.keystore, probe=True)
    try:
        create_predefined_keys(store, config)
        description = store.description
    finally:
        store.close()
    return ServerState(config, tls, host, port, description)


def create_predefined_keys(store: Keystore, config: ServerConfig) -> None:
    """Create every ``keys:`` entry that does not exist yet, in file order (config.md §4.8)."""
    for name in config.keys:
        if not valid_name(name):
            log.warning("pre-defined key '%s' is not a valid key name: the API cannot use it", name)
        version = KeyVersion.generate(created_by=config.admin_identity)
        try:
            store.create(name, version.encode())
        except KeyExistsError:
            continue
        except KeystoreError as err:
            raise ConfigError(f"failed to create pre-defined key '{name}': {err}") from None
