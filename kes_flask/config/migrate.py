"""``kes-flask migrate-config``: rewrite an old KES config (TOML, or YAML with renamed keys)
into the current YAML format (config.md §7, "Decision" mapping).

Loading never applies these renames implicitly — a config must behave the same under Go KES and
kes-flask — so conversion is an explicit, reviewable step. The output starts with a comment
header that lists every change and every value the operator still has to fill in.
"""

from __future__ import annotations

from typing import Any

import yaml
from marshmallow import Schema

from .errors import ConfigError
from .fields import NamedSections, Section, SectionList, StringList
from .legacy import parse_toml, require_toml
from .loader import read_config_text
from .schema import ConfigFileSchema
from .unknown import find_unknown_keys
from .yamltree import Scalar, YamlMap, YamlSeq, YamlSyntaxError, read_document

_AWS_RENAMES = {"address": "endpoint", "region": "region", "kms_key_id": "kmskey"}
_AWS_CREDENTIAL_RENAMES = {
    "access_key": "accesskey",
    "secret_key": "secretkey",
    "session_token": "token",
}
_TOP_ORDER = (
    "version",
    "address",
    "admin",
    "tls",
    "cache",
    "log",
    "api",
    "policy",
    "keys",
    "keystore",
)
_MTLS_AUTH = {"ignore": "off", "verify": "on"}


def _plain(node: Any) -> Any:
    """YAML tree → plain data; scalars keep their raw text unless they are null/bool/int."""
    if isinstance(node, YamlMap):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, YamlSeq):
        return [_plain(item) for item in node]
    assert isinstance(node, Scalar)
    kind = node.kind
    if kind == "null":
        return None
    if kind == "bool":
        return node.text.lower() == "true"
    if kind == "int" and node.text.isdigit() and str(int(node.text)) == node.text:
        return int(node.text)
    return node.text


def _section(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _replace(section: dict[str, Any], old: str, replacement: dict[str, Any]) -> None:
    """Put ``replacement`` where ``old`` was, keeping the order of the other keys."""
    items = list(section.items())
    section.clear()
    for key, value in items:
        if key == old:
            section.update(replacement)
        elif key not in replacement:
            section[key] = value


def _rename(section: dict[str, Any], old: str, new: str, path: str, notes: list[str]) -> None:
    if old not in section:
        return
    if section.get(new) not in (None, "", []):
        del section[old]
        notes.append(f"dropped {path}.{old} because {path}.{new} is set")
        return
    _replace(section, old, {new: section[old]})
    notes.append(f"renamed {path}.{old} to {path}.{new}")


def _drop(section: dict[str, Any] | None, key: str, path: str, notes: list[str]) -> None:
    if section is not None and key in section:
        del section[key]
        notes.append(f"removed {path}.{key} (no longer configurable)")


def _migrate_policies(data: dict[str, Any], notes: list[str]) -> None:
    for name, policy in (_section(data, "policy") or {}).items():
        if isinstance(policy, dict) and "paths" in policy:
            allow = list(policy.get("allow") or []) + list(policy["paths"] or [])
            _replace(policy, "paths", {"allow": allow})
            notes.append(f"renamed policy.{name}.paths to policy.{name}.allow")


def _migrate_logs(data: dict[str, Any], notes: list[str]) -> None:
    log = _section(data, "log")
    for name in ("error", "audit"):
        if log is not None and isinstance(log.get(name), dict):
            del log[name]
            stream = "stderr" if name == "error" else "stdout"
            notes.append(f"removed log.{name} log files: the {name} log goes to {stream}")


def _migrate_vault(vault: dict[str, Any], notes: list[str]) -> None:
    path = "keystore.vault"
    _rename(vault, "address", "endpoint", path, notes)
    if "name" in vault:
        name = vault["name"]
        if vault.get("prefix") not in (None, "", name):
            raise ConfigError(
                "keystore.vault.name and keystore.vault.prefix are both set and differ; "
                "keep one of them and run the conversion again"
            )
        engine = {"engine": vault.get("engine") or "kv", "version": vault.get("version") or "v1"}
        _replace(vault, "name", {**engine, "prefix": name})
        notes.append(
            "replaced keystore.vault.name with engine kv, version v1 and prefix "
            "(old keys were stored at kv/<name>/<key>)"
        )
    for method in ("approle", "kubernetes"):
        _drop(_section(vault, method), "retry", f"{path}.{method}", notes)


def _migrate_aws(aws: dict[str, Any], notes: list[str]) -> None:
    old = _section(aws, "secrets_manager")
    if old is None:
        return
    del aws["secrets_manager"]
    new: dict[str, Any] = {}
    for key, value in old.items():
        if key == "credentials" and isinstance(value, dict):
            value = {_AWS_CREDENTIAL_RENAMES.get(k, k): v for k, v in value.items()}
        new[_AWS_RENAMES.get(key, key)] = value
    aws.setdefault("secretsmanager", new)
    notes.append("renamed keystore.aws.secrets_manager and its keys to keystore.aws.secretsmanager")


def _migrate_keystore(data: dict[str, Any], notes: list[str]) -> None:
    if isinstance(data.get("keys"), dict) and "keystore" not in data:
        data["keystore"] = data.pop("keys")
        notes.append(
            "renamed the top-level keys section (the keystore of KES v0.8-v0.13) to keystore"
        )
    keystore = _section(data, "keystore")
    if keystore is None:
        return
    if keystore.get("generic") is not None:
        raise ConfigError(
            "keystore.generic (the KMS plugin keystore) no longer exists and has no replacement; "
            "choose another keystore"
        )
    vault = _section(keystore, "vault")
    if vault is not None:
        _migrate_vault(vault, notes)
    keysecure = _section(_section(keystore, "gemalto") or {}, "keysecure") or {}
    _drop(
        _section(keysecure, "credentials"), "retry", "keystore.gemalto.keysecure.credentials", notes
    )
    aws = _section(keystore, "aws")
    if aws is not None:
        _migrate_aws(aws, notes)


def _migrate_admin(data: dict[str, Any], admin_identity: str | None, notes: list[str]) -> None:
    admin = data.get("admin") if isinstance(data.get("admin"), dict) else {}
    root = data.pop("root", None)
    if root is not None and not admin.get("identity"):
        admin["identity"] = root
        notes.append("renamed root to admin.identity")
    elif root is not None:
        notes.append("dropped root because admin.identity is set")
    if admin_identity is not None:
        admin["identity"] = admin_identity
        notes.append("set admin.identity from the old --root flag")
    admin.setdefault("identity", "")
    data["admin"] = admin


def _migrate_cache(data: dict[str, Any], notes: list[str]) -> None:
    expiry = _section(_section(data, "cache") or {}, "expiry")
    if expiry is not None:
        _rename(expiry, "all", "any", "cache.expiry", notes)


def _apply_mtls_auth(data: dict[str, Any], mtls_auth: str | None, notes: list[str]) -> None:
    if mtls_auth is None:
        return
    if mtls_auth not in _MTLS_AUTH:
        raise ConfigError(f"invalid --mtls-auth value '{mtls_auth}': use 'verify' or 'ignore'")
    tls = data.setdefault("tls", {})
    tls["auth"] = _MTLS_AUTH[mtls_auth]
    notes.append(f"set tls.auth: {tls['auth']} from the old --mtls-auth={mtls_auth} flag")


def _missing_values(schema: Schema, data: Any, path: str = "") -> list[str]:
    """Paths of required values that are empty (per the schema's ``required_field`` metadata)."""
    if not isinstance(data, dict):
        return []
    missing = []
    for name, field in schema.fields.items():
        value = data.get(name)
        where = f"{path}.{name}" if path else name
        if isinstance(field, Section) and isinstance(value, dict):
            missing += _missing_values(field.schema, value, where)
        elif isinstance(field, NamedSections) and isinstance(value, dict):
            for key, item in value.items():
                missing += _missing_values(field.schema, item, f"{where}.{key}")
        elif isinstance(field, SectionList) and isinstance(value, list):
            for index, item in enumerate(value):
                missing += _missing_values(field.schema, item, f"{where}[{index}]")
        elif isinstance(field, StringList) and isinstance(value, list):
            missing += [f"{where}[{i}]" for i, item in enumerate(value) if item in ("", None)]
        elif field.metadata.get("required_field") and name in data and value in ("", None):
            missing.append(where)
    return missing


def _header(path: str, kind: str, notes: list[str], missing: list[str], unknown: list[str]) -> str:
    lines = [
        f"# KES server configuration converted by 'kes-flask migrate-config' from {path}",
        f"# (a {kind} config of an older KES version). Review it before use.",
        "#",
        "# Changes:",
        *[f"#   - {note}" for note in notes or ["none needed"]],
    ]
    if missing:
        lines += ["#", "# Fill in before starting the server (empty now):"]
        lines += [f"#   - {item}" for item in missing]
        if "admin.identity" in missing:
            lines += ["#   (admin.identity: an identity from 'kes identity of', or 'disabled')"]
    if unknown:
        lines += ["#", "# Keys kes-flask does not know (kept, but ignored when loading):"]
        lines += [f"#   - {item}" for item in unknown]
    lines += [
        "#",
        "# Client certificates: KES up to v0.22 verified them by default. This file keeps the",
        "# current default unless tls.auth is set (off: any certificate is accepted and only its",
        "# identity is checked by the policies). Set tls.auth: on to verify them against tls.ca.",
        "# Full reference: docs/configuration.md",
        "",
    ]
    return "\n".join(lines)


def _load_legacy(path: str) -> tuple[dict[str, Any], str]:
    text = read_config_text(path)
    if path.lower().endswith(".toml"):
        return require_toml(text, path), "TOML"
    try:
        document = read_document(text, path, {})
    except YamlSyntaxError:
        if parse_toml(text) is None:
            raise
        return require_toml(text, path), "TOML"
    if document.duplicates:
        raise ConfigError("\n".join(d.message(path) for d in document.duplicates))
    return _plain(document.root), "YAML"


def migrate_config(
    path: str, *, admin_identity: str | None = None, mtls_auth: str | None = None
) -> str:
    """Return current-format YAML for the legacy config at ``path``.

    ``admin_identity`` / ``mtls_auth`` carry the old ``--root`` and ``--mtls-auth`` flags
    (``verify`` or ``ignore``) into the file. Raises ConfigError if the file cannot be converted.
    """
    data, kind = _load_legacy(path)
    notes: list[str] = []
    _migrate_keystore(data, notes)
    _migrate_admin(data, admin_identity, notes)
    _migrate_policies(data, notes)
    _migrate_cache(data, notes)
    _migrate_logs(data, notes)
    _apply_mtls_auth(data, mtls_auth, notes)
    if data.get("version") in (None, ""):
        data["version"] = "v1"
    ordered = {key: data[key] for key in _TOP_ORDER if key in data}
    ordered.update((key, value) for key, value in data.items() if key not in ordered)
    body = yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, allow_unicode=True)
    schema = ConfigFileSchema()
    unknown = [key for _, key, _ in find_unknown_keys(schema, read_document(body, path, {}).root)]
    return _header(path, kind, notes, _missing_values(schema, ordered), unknown) + body
