"""What the gunicorn master does before any worker serves a request (config.md §9).

Everything that can fail is checked here, in the master, so a bad configuration never
half-starts: policies, TLS files, the listen address, the keystore, and the pre-defined keys.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from cryptography import x509

from kes_flask.auth.names import valid_name
from kes_flask.auth.policy import PolicySet
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import DEFAULT_ADDRESS, FSKeystoreConfig, ServerConfig, TLSConfig
from kes_flask.crypto import KeyVersion
from kes_flask.keystore import open_keystore
from kes_flask.keystore.base import KeyExistsError, Keystore, KeystoreError
from kes_flask.server.address import parse_listen_address
from kes_flask.server.checks import (
    OK,
    certificate_findings,
    key_directory_findings,
    permission_finding,
)
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
    for warning in tls_warnings(config.tls):
        log.warning("WARNING: %s", warning)
    if isinstance(config.keystore, FSKeystoreConfig):
        for warning in key_directory_warnings(config.keystore.path):
            log.warning("WARNING: %s", warning)
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


def tls_warnings(tls: TLSConfig, now: datetime.datetime | None = None) -> list[str]:
    """What an operator should fix soon although the server can start (the files loaded).

    An expired certificate still starts (like Go KES) because a renewal may be on its way, but
    every client will refuse it; a private key others can read is a leaked key waiting to happen.
    The checks are the ones ``kes-flask doctor`` reports as failures and warnings.
    """
    findings = []
    try:
        with open(tls.cert, "rb") as file:
            leaf = x509.load_pem_x509_certificate(file.read())
    except (OSError, ValueError):
        leaf = None  # the context was built from this file: a race with a rewrite, not ours
    if leaf is not None:
        findings.extend(f for f in certificate_findings(tls.cert, leaf, now=now) if f.status != OK)
    readable = permission_finding(tls.key, "tls.key: the private key", "tls")
    if readable is not None:
        findings.append(readable)
    return [f"{finding.message}: {finding.fix}" for finding in findings]


def key_directory_warnings(directory: str) -> list[str]:
    """The FS keystore's directory and key files should be private (the checks of doctor)."""
    return [f"{f.message}: {f.fix}" for f in key_directory_findings(directory)]
