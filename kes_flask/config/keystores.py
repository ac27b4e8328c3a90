"""Keystore section rules (config.md §4.9): exactly one backend, checked in upstream order.

A backend counts as present when its section is a mapping (``fs: {}``), not when it is null
(``fs:``). Messages are Go KES's exact ``kesconf:`` strings; the first failure wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .duration import SECOND, format_duration
from .errors import ConfigError
from .model import (
    AWSKeystoreConfig,
    AzureKeystoreConfig,
    EntrustKeystoreConfig,
    FortanixKeystoreConfig,
    FSKeystoreConfig,
    GCPKeystoreConfig,
    GemaltoKeystoreConfig,
    KeystoreConfig,
    VaultAppRole,
    VaultKeystoreConfig,
    VaultKubernetes,
    VaultTLS,
    VaultTransit,
)

Section = dict[str, Any]
DEFAULT_VAULT_PING = 15 * SECOND


def _require(value: str, message: str) -> str:
    if not value:
        raise ConfigError(message)
    return value


def _non_empty(**values: str) -> dict[str, str]:
    """Drop empty strings so the dataclass defaults (engine "kv", …) apply, as at Go connect."""
    return {name: value for name, value in values.items() if value}


def _fs(section: Section) -> KeystoreConfig:
    return FSKeystoreConfig(
        path=_require(section["path"], "kesconf: invalid fs keystore: no path specified")
    )


def _check_jwt_file(jwt: str) -> None:
    """A JWT containing a path separator names a file that must be readable now."""
    if "/" not in jwt and os.sep not in jwt:
        return
    try:
        with open(jwt, "rb") as handle:
            handle.read()
    except OSError as err:
        operation = "read" if isinstance(err, IsADirectoryError) else "open"
        reason = (err.strerror or str(err)).lower()
        message = f"kesconf: failed to read vault kubernetes JWT from '{jwt}'"
        raise ConfigError(f"{message}: {operation} {jwt}: {reason}") from None


def _vault(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid vault keystore:"
    endpoint = _require(section["endpoint"], f"{prefix} no endpoint specified")
    approle, kubernetes, transit = section["approle"], section["kubernetes"], section["transit"]
    if approle is None and kubernetes is None:
        raise ConfigError(f"{prefix} no authentication method specified")
    if approle is not None and kubernetes is not None:
        raise ConfigError(f"{prefix} more than one authentication method specified")
    if approle is not None:
        _require(approle["id"], f"{prefix} invalid approle config: no approle ID specified")
        _require(approle["secret"], f"{prefix} invalid approle config: no approle secret specified")
    if kubernetes is not None:
        _require(kubernetes["jwt"], f"{prefix} invalid kubernetes config: no JWT specified")
        _check_jwt_file(kubernetes["jwt"])
    if transit is not None:
        _require(transit["key"], f"{prefix} invalid transit config: no key name specified")
    tls = section["tls"]
    if tls["key"] and not tls["cert"]:
        raise ConfigError(f"{prefix} invalid tls config: no TLS certificate provided")
    if tls["cert"] and not tls["key"]:
        raise ConfigError(f"{prefix} invalid tls config: no TLS private key provided")
    ping = section["status"]["ping"] or 0
    if ping < 0:
        raise ConfigError(f"{prefix} invalid status ping '{format_duration(ping)}'")
    return VaultKeystoreConfig(
        endpoint=endpoint,
        **_non_empty(
            engine=section["engine"],
            version=section["version"],
            namespace=section["namespace"],
            prefix=section["prefix"],
        ),
        approle=None if approle is None else VaultAppRole(**_non_empty(**approle)),
        kubernetes=None if kubernetes is None else VaultKubernetes(**_non_empty(**kubernetes)),
        transit=None if transit is None else VaultTransit(**_non_empty(**transit)),
        tls=VaultTLS(key=tls["key"], cert=tls["cert"], ca=tls["ca"]),
        status_ping=ping or DEFAULT_VAULT_PING,
    )


def _fortanix(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid fortanix SDKMS keystore:"
    endpoint = _require(section["endpoint"], f"{prefix} no endpoint specified")
    api_key = _require(section["credentials"]["key"], f"{prefix} no API key specified")
    return FortanixKeystoreConfig(
        endpoint=endpoint, group_id=section["group_id"], api_key=api_key, ca=section["tls"]["ca"]
    )


def _gemalto(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid gemalto keysecure keystore:"
    endpoint = _require(section["endpoint"], f"{prefix} no endpoint specified")
    credentials = section["credentials"]
    token = _require(credentials["token"], f"{prefix} no token specified")
    return GemaltoKeystoreConfig(
        endpoint=endpoint, token=token, domain=credentials["domain"], ca=section["tls"]["ca"]
    )


def _gcp(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid GCP secretmanager keystore:"
    project_id = _require(section["project_id"], f"{prefix} no project ID specified")
    credentials = section["credentials"]
    return GCPKeystoreConfig(
        project_id=project_id,
        endpoint=section["endpoint"],
        scopes=section["scopes"],
        client_email=credentials["client_email"],
        client_id=credentials["client_id"],
        private_key_id=credentials["private_key_id"],
        private_key=credentials["private_key"],
    )


def _aws(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid AWS secretsmanager keystore:"
    endpoint = _require(section["endpoint"], f"{prefix} no endpoint specified")
    region = _require(section["region"], f"{prefix} no region specified")
    credentials = section["credentials"]
    return AWSKeystoreConfig(
        endpoint=endpoint,
        region=region,
        kms_key=section["kmskey"],
        access_key=credentials["accesskey"],
        secret_key=credentials["secretkey"],
        session_token=credentials["token"],
    )


def _azure(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid Azure keyvault keystore:"
    endpoint = _require(section["endpoint"], f"{prefix} no endpoint specified")
    credentials, managed = section["credentials"], section["managed_identity"]
    if credentials is not None and managed is not None:
        raise ConfigError(f"{prefix} more than one authentication method specified")
    if credentials is not None:
        _require(credentials["tenant_id"], f"{prefix} no tenant ID specified")
        _require(credentials["client_id"], f"{prefix} no client ID specified")
        _require(credentials["client_secret"], f"{prefix} no client secret specified")
        return AzureKeystoreConfig(
            endpoint=endpoint,
            tenant_id=credentials["tenant_id"],
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            auth="credentials",
        )
    if managed is not None:
        client_id = _require(managed["client_id"], f"{prefix} no client ID specified")
        return AzureKeystoreConfig(
            endpoint=endpoint, managed_identity_client_id=client_id, auth="managed_identity"
        )
    return AzureKeystoreConfig(endpoint=endpoint, auth="default")


def _entrust(section: Section) -> KeystoreConfig:
    prefix = "kesconf: invalid Entrust KeyControl keystore:"
    credentials = section["credentials"]
    return EntrustKeystoreConfig(
        endpoint=_require(section["endpoint"], f"{prefix} no endpoint specified"),
        vault_id=_require(section["vault_id"], f"{prefix} no vault ID specified"),
        box_id=_require(section["box_id"], f"{prefix} no box ID specified"),
        username=_require(credentials["username"], f"{prefix} no username specified"),
        password=_require(credentials["password"], f"{prefix} no password specified"),
        ca=section["tls"]["ca"],
    )


def _section_at(keystore: Section, path: tuple[str, ...]) -> Section | None:
    section: Section | None = keystore
    for name in path:
        section = None if section is None else section[name]
    return section


# Upstream check order: the first present backend is validated before a second one is noticed.
# For the nested backends the inner section decides presence ("fortanix: {}" alone is ignored).
BACKENDS: tuple[tuple[tuple[str, ...], Callable[[Section], KeystoreConfig]], ...] = (
    (("fs",), _fs),
    (("vault",), _vault),
    (("fortanix", "sdkms"), _fortanix),
    (("gemalto", "keysecure"), _gemalto),
    (("gcp", "secretmanager"), _gcp),
    (("aws", "secretsmanager"), _aws),
    (("azure", "keyvault"), _azure),
    (("entrust", "keycontrol"), _entrust),
)


def build_keystore(keystore: Section) -> KeystoreConfig:
    """Validate the ``keystore`` section and return the one configured backend."""
    result: KeystoreConfig | None = None
    for path, build in BACKENDS:
        section = _section_at(keystore, path)
        if section is None:
            continue
        if result is not None:
            raise ConfigError("kesconf: invalid keystore config: more than once keystore specified")
        result = build(section)
    if result is None:
        raise ConfigError("kesconf: no keystore specified")
    return result
