"""Find keys the schema does not know, so they can be reported as warnings.

Go KES silently ignores unknown keys (config.md §1.1); kes-flask ignores them too, but says so,
because a misspelled or renamed key otherwise has no visible effect. Known legacy spellings get a
hint that points at the current name and ``kes-flask migrate-config``.
"""

from __future__ import annotations

from collections.abc import Iterator

from marshmallow import Schema

from .fields import NamedSections, Section, SectionList
from .yamltree import YamlMap, YamlSeq

MIGRATE_HINT = "'kes-flask migrate-config <file>' converts old config files"

# Keyed by the path with policy names / API paths replaced by "*" (config.md §7).
LEGACY_HINTS = {
    "root": "renamed to admin.identity",
    "policy.*.paths": "renamed to allow",
    "cache.expiry.all": "renamed to cache.expiry.any",
    "keystore.vault.address": "renamed to keystore.vault.endpoint",
    "keystore.vault.name": "use keystore.vault.prefix with engine kv and version v1",
    "keystore.vault.approle.retry": "no longer configurable",
    "keystore.vault.kubernetes.retry": "no longer configurable",
    "keystore.gemalto.keysecure.credentials.retry": "no longer configurable",
    "keystore.aws.secrets_manager": "renamed to keystore.aws.secretsmanager",
    "keystore.generic": "the generic KMS plugin keystore no longer exists",
}


def _fields_by_key(schema: Schema) -> dict[str, object]:
    return {field.data_key or name: field for name, field in schema.fields.items()}


def find_unknown_keys(
    schema: Schema, node: YamlMap, path: str = "", pattern: str = ""
) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line, dotted path, path pattern)`` for every key ``schema`` does not declare."""
    known = _fields_by_key(schema)
    for key, value in node.items():
        key_path = f"{path}.{key}" if path else key
        key_pattern = f"{pattern}.{key}" if pattern else key
        field = known.get(key)
        if field is None:
            yield node.key_lines[key], key_path, key_pattern
        elif isinstance(field, Section) and isinstance(value, YamlMap):
            yield from find_unknown_keys(field.schema, value, key_path, key_pattern)
        elif isinstance(field, NamedSections) and isinstance(value, YamlMap):
            item_schema = field.schema
            for name, item in value.items():
                if isinstance(item, YamlMap):
                    yield from find_unknown_keys(
                        item_schema, item, f"{key_path}.{name}", f"{key_pattern}.*"
                    )
        elif isinstance(field, SectionList) and isinstance(value, YamlSeq):
            item_schema = field.schema
            for index, item in enumerate(value):
                if isinstance(item, YamlMap):
                    yield from find_unknown_keys(
                        item_schema, item, f"{key_path}[{index}]", f"{key_pattern}[]"
                    )


def unknown_key_warnings(schema: Schema, root: YamlMap, source: str) -> list[str]:
    """One warning line per unknown key, in file order."""
    warnings = []
    for line, path, pattern in sorted(find_unknown_keys(schema, root)):
        hint = LEGACY_HINTS.get(pattern)
        suffix = f" (ignored; {hint}; {MIGRATE_HINT})" if hint else " (ignored)"
        warnings.append(f"{source}: line {line}: unknown key '{path}'{suffix}")
    return warnings
