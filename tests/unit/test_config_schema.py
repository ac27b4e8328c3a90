"""The schemas are introspectable and agree with config.example.yml and docs/configuration.md."""

import re
from pathlib import Path

import pytest

from kes_flask.config.fields import NamedSections, Section, SectionList
from kes_flask.config.schema import ConfigFileSchema
from kes_flask.config.unknown import find_unknown_keys
from kes_flask.config.yamltree import YamlMap, YamlSeq, read_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.example.yml").read_text()
DOCS = (ROOT / "docs" / "configuration.md").read_text()
BACKENDS = ("vault", "fortanix", "gemalto", "gcp", "aws", "azure", "entrust")


def schema_leaves(schema, path=""):
    """``(path, field)`` for every leaf; map keys become ``*``, list items ``[]``."""
    for name, field in schema.fields.items():
        where = f"{path}.{name}" if path else name
        if isinstance(field, Section):
            if not field.metadata.get("legacy"):
                yield from schema_leaves(field.schema, where)
        elif isinstance(field, NamedSections):
            yield from schema_leaves(field.schema, f"{where}.*")
        elif isinstance(field, SectionList):
            yield from schema_leaves(field.schema, f"{where}[]")
        else:
            yield where, field


LEAVES = dict(schema_leaves(ConfigFileSchema()))


def tree_leaves(node, path=""):
    for key, value in node.items():
        if path in ("policy", "api"):
            key = "*"
        where = f"{path}.{key}" if path else key
        if isinstance(value, YamlMap) and value and not where.endswith(("identities", "scopes")):
            yield from tree_leaves(value, where)
        elif isinstance(value, YamlSeq) and value and isinstance(value[0], YamlMap):
            for item in value:
                yield from tree_leaves(item, f"{where}[]")
        else:
            yield where


def uncommented_backend(name):
    lines = EXAMPLE.splitlines()
    start = lines.index(f"  # {name}:")
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line[:2] + line[4:])
    return "keystore:\n" + "\n".join(block) + "\n"


def test_every_field_is_documented_in_metadata():
    assert len(LEAVES) > 70
    for path, field in LEAVES.items():
        assert field.metadata["description"], path
        assert isinstance(field.metadata["env"], bool), path
        assert "default" in field.metadata and "secret" in field.metadata, path


def test_env_flags_follow_the_spec():
    not_env = {path for path, field in LEAVES.items() if not field.metadata["env"]}
    assert not_env == {"version", "policy.*.allow", "policy.*.deny"}


def test_secret_fields_are_marked():
    secret = {path for path, field in LEAVES.items() if field.metadata["secret"]}
    assert secret == {
        "tls.password",
        "keystore.vault.approle.secret",
        "keystore.vault.kubernetes.jwt",
        "keystore.fortanix.sdkms.credentials.key",
        "keystore.gemalto.keysecure.credentials.token",
        "keystore.gcp.secretmanager.credentials.private_key",
        "keystore.aws.secretsmanager.credentials.secretkey",
        "keystore.aws.secretsmanager.credentials.token",
        "keystore.azure.keyvault.credentials.client_secret",
        "keystore.entrust.keycontrol.credentials.password",
    }


def test_presence_sections_are_marked():
    keystore = ConfigFileSchema().fields["keystore"].schema
    vault = keystore.fields["vault"].schema
    assert keystore.fields["fs"].metadata["presence"] is True
    assert vault.fields["approle"].metadata["presence"] is True
    assert vault.fields["tls"].metadata["presence"] is False


@pytest.mark.parametrize("name", BACKENDS)
def test_example_backend_blocks_match_the_schema(name):
    document = read_document(uncommented_backend(name), "example", {})
    assert list(find_unknown_keys(ConfigFileSchema(), document.root)) == []


def test_example_covers_every_field():
    paths = set(tree_leaves(read_document(EXAMPLE, "example", {}).root))
    for name in BACKENDS:
        paths |= set(tree_leaves(read_document(uncommented_backend(name), "example", {}).root))
    assert "#  - name: minio-default-key" in EXAMPLE
    paths.add("keys[].name")
    assert set(LEAVES) - paths == set()


def test_docs_mention_every_field():
    documented = set(re.findall(r"`([^`]+)`", DOCS))
    missing = []
    for path in LEAVES:
        docs_path = path.replace("policy.*", "policy.<name>").replace("api.*", "api.<path>")
        if docs_path.startswith("keystore."):
            parts = docs_path.split(".")
            inner = 3 if parts[1] in ("vault", "fs") else 4
            candidates = {".".join(parts[2:]), ".".join(parts[inner - 1 :]), parts[-1]}
        else:
            candidates = {docs_path}
        if not candidates & documented:
            missing.append(path)
    assert missing == []


def test_docs_list_the_deviations():
    section = DOCS[DOCS.index("## Deviations from Go KES") :]
    assert "defaults to 30s" in section
    assert "`true`/`false`" in section
    assert "Negative `keystore.vault.status.ping` is rejected" in section
