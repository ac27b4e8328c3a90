"""Semantic checks in Go KES's order (config.md §5) and assembly of the frozen ``ServerConfig``.

Input is the dict produced by ``schema.ConfigFileSchema``; the first failing rule raises a
ConfigError with the exact upstream ``kesconf:`` text, so operators can compare messages with
Go KES. Startup-time rules (listen address, TLS files, policy/identity name syntax, identities in
two policies) are deliberately not checked here.
"""

from __future__ import annotations

import re
from typing import Any

from .duration import format_duration
from .errors import ConfigError
from .keystores import build_keystore
from .levels import parse_log_level
from .model import (
    AUDIT_ALL,
    LEVEL_INFO,
    APIOverride,
    CacheConfig,
    LogConfig,
    PolicyConfig,
    ServerConfig,
    TLSConfig,
)
from .unknown import MIGRATE_HINT

# The API's key-name rule (config.md §4.8); names failing it only earn a warning.
_API_NAME = re.compile(r"(?!_$)(?!-)[0-9A-Za-z_-]{1,80}(?<!-)")

ROOT_HINT = (
    "hint: the top-level key 'root' of old KES versions was renamed to 'admin.identity'; "
    + MIGRATE_HINT
)


def _admin_identity(data: dict[str, Any], has_root_key: bool) -> str:
    identity = data["admin"]["identity"]
    if not identity:
        message = "kesconf: invalid admin identity: no admin identity"
        raise ConfigError(f"{message}\n{ROOT_HINT}" if has_root_key else message)
    return identity


def _tls(tls: dict[str, Any], admin: str) -> TLSConfig:
    if not tls["key"]:
        raise ConfigError("kesconf: invalid tls config: no private key")
    if not tls["cert"]:
        raise ConfigError("kesconf: invalid tls config: no certificate")
    auth = tls["auth"].lower()  # lower-cased, deliberately not trimmed (upstream)
    if auth not in ("", "off", "on"):
        raise ConfigError(f"kesconf: invalid tls config: invalid auth '{tls['auth']}'")
    proxies = tls["proxy"]["identities"]
    for proxy in proxies:
        if proxy == admin:
            raise ConfigError(f"kesconf: invalid tls proxy: identity '{proxy}' is already admin")
    return TLSConfig(
        key=tls["key"],
        cert=tls["cert"],
        password=tls["password"],
        auth=auth or "off",
        ca=tls["ca"],
        proxy_identities=proxies,
        proxy_cert_header=tls["proxy"]["header"]["cert"],
    )


def _policies(policies: dict[str, Any], admin: str, proxies: tuple[str, ...]) -> tuple:
    result = []
    for name, policy in policies.items():  # file order (upstream: random map order)
        for identity in policy["identities"]:
            if identity == admin:
                raise ConfigError(
                    f"kesconf: invalid policy '{name}': identity '{identity}' is already admin"
                )
            if identity in proxies:
                message = f"kesconf: invalid policy '{name}': identity '{identity}'"
                raise ConfigError(f"{message} is already a TLS proxy")
        result.append(PolicyConfig(name, policy["allow"], policy["deny"], policy["identities"]))
    return tuple(result)


def _cache(expiry: dict[str, Any]) -> CacheConfig:
    values = {name: expiry[name] or 0 for name in ("any", "unused", "offline")}
    messages = {
        "any": "kesconf: invalid cache expiry '{}'",
        "unused": "kesconf: invalid cache unused expiry '{}'",
        "offline": "kesconf: invalid offline cache expiry '{}'",
    }
    for name, value in values.items():
        if value < 0:
            raise ConfigError(messages[name].format(format_duration(value)))
    return CacheConfig(values["any"], values["unused"], values["offline"])


def _api(paths: dict[str, Any]) -> dict[str, APIOverride]:
    result = {}
    for path, api in paths.items():
        timeout = api["timeout"] or 0
        if timeout < 0:
            raise ConfigError(f"kesconf: invalid timeout '{timeout}' for API '{path}'")
        result[path] = APIOverride(skip_auth=api["skip_auth"], timeout=timeout)
    return result


def _keys(items: list[dict[str, Any]], source: str, warnings: list[str]) -> tuple[str, ...]:
    names: list[str] = []
    for index, item in enumerate(items):
        name = item["name"]
        if name in names:
            message = f"kesconf: invalid key config: key '{name}'"
            raise ConfigError(f"{message} is defined multiple times")
        if not _API_NAME.fullmatch(name):
            warnings.append(
                f"{source}: keys[{index}].name: key name '{name}' cannot be used through the API "
                "(1 to 80 characters of 0-9 A-Z a-z _ -, not starting or ending with '-', not '_')"
            )
        names.append(name)
    return tuple(names)


def build_config(
    data: dict[str, Any], *, source: str, has_root_key: bool, warnings: list[str]
) -> ServerConfig:
    """Apply config.md §5 steps 2 to 12 to the schema output; ``warnings`` may be appended to."""
    admin = _admin_identity(data, has_root_key)
    tls = _tls(data["tls"], admin)
    policies = _policies(data["policy"], admin, tls.proxy_identities)
    cache = _cache(data["cache"]["expiry"])
    audit = data["log"]["audit"]
    audit_all = audit.strip().lower() == AUDIT_ALL
    log = LogConfig(
        error=parse_log_level(data["log"]["error"]),
        audit=LEVEL_INFO if audit_all else parse_log_level(audit),
        audit_all=audit_all,
    )
    api = _api(data["api"])
    keys = _keys(data["keys"], source, warnings)
    keystore = build_keystore(data["keystore"])
    return ServerConfig(
        admin_identity=admin,
        tls=tls,
        keystore=keystore,
        address=data["address"],
        cache=cache,
        log=log,
        api=api,
        policies=policies,
        keys=keys,
        mlock=data["mlock"],
        warnings=tuple(warnings),
    )
