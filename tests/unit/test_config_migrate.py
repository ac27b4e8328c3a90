"""migrate_config: old TOML / YAML configs to the current format (config.md §7)."""

from pathlib import Path

import pytest
import yaml

from kes_flask.config import ConfigError, migrate_config, parse_config

DATA = Path(__file__).resolve().parents[1] / "data" / "config"
SEED_TOML = DATA / "seeds" / "002-kes-config.toml"
IDENTITY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def body(output):
    """The YAML after the comment header, as plain data."""
    return yaml.safe_load(output)


def test_seed_002_toml():
    output = migrate_config(str(SEED_TOML))
    assert output.startswith("# KES server configuration converted by 'kes-flask migrate-config'")
    header = [line for line in output.splitlines() if line.startswith("#")]
    assert "#   - renamed keystore.vault.address to keystore.vault.endpoint" in header
    assert "#   - renamed policy.minio.paths to policy.minio.allow" in header
    assert "#   - renamed cache.expiry.all to cache.expiry.any" in header
    assert "#   - removed keystore.vault.approle.retry (no longer configurable)" in header
    fill_in = header[header.index("# Fill in before starting the server (empty now):") + 1 :]
    assert fill_in[:3] == [
        "#   - admin.identity",
        "#   - keystore.vault.approle.id",
        "#   - keystore.vault.approle.secret",
    ]
    data = body(output)
    assert list(data) == ["version", "address", "admin", "tls", "cache", "policy", "keystore"]
    assert data["admin"] == {"identity": ""}
    assert data["cache"] == {"expiry": {"any": "5m", "unused": "20s"}}
    assert data["policy"]["minio"]["allow"][0] == "/v1/key/create/minio-*"
    vault = data["keystore"]["vault"]
    assert list(vault)[:4] == ["endpoint", "engine", "version", "prefix"]
    assert vault["approle"] == {"id": "", "secret": ""}

    filled = output.replace("identity: ''", "identity: disabled")
    filled = filled.replace("id: ''", "id: role").replace("secret: ''", "secret: s3cret")
    config = parse_config(filled, {}, "config.yml")
    assert config.warnings == ()
    assert (config.address, config.admin_identity) == ("127.0.0.1:7373", "disabled")
    assert (config.tls.key, config.tls.cert, config.tls.auth) == (
        "./kes-tls.key",
        "./kes-tls.crt",
        "off",
    )
    assert config.policies[0].name == "minio"
    assert config.policies[0].allow == (
        "/v1/key/create/minio-*",
        "/v1/key/generate/minio-*",
        "/v1/key/decrypt/minio-*",
    )
    assert config.policies[0].identities == (
        "dd46485bedc9ad2909d2e8f9017216eec4413bc5c64b236d992f7ec19c843c5f",
    )
    assert (config.cache.expiry_any, config.cache.expiry_unused) == (300 * 10**9, 20 * 10**9)
    vault_config = config.keystore
    assert (
        vault_config.endpoint,
        vault_config.engine,
        vault_config.version,
        vault_config.prefix,
    ) == (
        "https://127.0.0.1:8200",
        "kv",
        "v1",
        "minio",
    )
    assert (vault_config.approle.id, vault_config.approle.secret) == ("role", "s3cret")
    assert vault_config.tls.ca == "./vault-tls.crt"
    assert vault_config.status_ping == 10 * 10**9


def test_seed_002_command_line_flags():
    output = migrate_config(str(SEED_TOML), admin_identity="disabled", mtls_auth="ignore")
    data = body(output)
    assert data["admin"]["identity"] == "disabled"
    assert data["tls"]["auth"] == "off"
    assert "#   - admin.identity" not in output
    assert body(migrate_config(str(SEED_TOML), mtls_auth="verify"))["tls"]["auth"] == "on"
    with pytest.raises(ConfigError, match="invalid --mtls-auth value 'maybe'"):
        migrate_config(str(SEED_TOML), mtls_auth="maybe")


def test_toml_detected_by_content(tmp_path):
    path = tmp_path / "config.conf"
    path.write_text(SEED_TOML.read_text())
    assert body(migrate_config(str(path)))["keystore"]["vault"]["prefix"] == "minio"


def test_legacy_yaml():
    output = migrate_config(str(DATA / "legacy" / "old-vault.yml"))
    assert "#   - renamed the top-level keys section" in output
    assert "#   - removed log.error log files: the error log goes to stderr" in output
    assert "Fill in" not in output
    data = body(output)
    assert "root" not in data
    assert data["admin"]["identity"].startswith("3ecfcdf3")
    assert "keys" not in data
    assert data["log"] == {"audit": "off"}
    config = parse_config(output, {"VAULT_SECRET": "from-env"}, "config.yml")
    assert config.warnings == ()
    assert config.policies[0].allow == ("/v1/key/create/my-app*", "/v1/key/generate/my-app*")
    assert config.policies[0].identities == (IDENTITY,)
    assert config.api["/v1/status"].skip_auth is True
    assert config.cache.expiry_any == 300 * 10**9
    assert config.log.audit == 9
    vault = config.keystore
    assert (vault.endpoint, vault.engine, vault.version, vault.prefix) == (
        "https://127.0.0.1:8200",
        "kv",
        "v1",
        "my-kes",
    )
    assert vault.approle.id == "0123"  # raw text survives
    assert vault.approle.secret == "from-env"  # ${VAR} kept for expansion at load time


def test_legacy_aws_spellings():
    data = body(migrate_config(str(DATA / "legacy" / "old-aws.yml")))
    assert data["admin"] == {"identity": "disabled"}
    assert data["keystore"]["aws"] == {
        "secretsmanager": {
            "endpoint": "secretsmanager.us-east-2.amazonaws.com",
            "region": "us-east-2",
            "kmskey": "alias/kes",
            "credentials": {"accesskey": "AKIA", "secretkey": "SECRET", "token": ""},
        }
    }
    config = parse_config(migrate_config(str(DATA / "legacy" / "old-aws.yml")), {})
    assert (config.keystore.kms_key, config.keystore.access_key) == ("alias/kes", "AKIA")


def test_small_renames_and_unknown_keys(tmp_path):
    path = tmp_path / "old.yml"
    path.write_text(
        "admin: {identity: a}\nroot: b\ntls: {key: k, cert: c}\nmystery: 1\n"
        "policy:\n  p:\n    allow: [x]\n    paths: [y]\n"
        "keystore:\n  gemalto:\n    keysecure:\n      endpoint: e\n"
        "      credentials: {token: t, retry: 15s}\n"
    )
    output = migrate_config(str(path))
    assert "#   - dropped root because admin.identity is set" in output
    assert (
        "#   - removed keystore.gemalto.keysecure.credentials.retry (no longer configurable)"
        in output
    )
    assert (
        "# Keys kes-flask does not know (kept, but ignored when loading):\n#   - mystery" in output
    )
    data = body(output)
    assert data["admin"] == {"identity": "a"}
    assert data["policy"]["p"] == {"allow": ["x", "y"]}
    assert data["keystore"]["gemalto"]["keysecure"]["credentials"] == {"token": "t"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "keystore:\n  generic:\n    endpoint: x\n",
            "keystore.generic (the KMS plugin keystore) no longer exists",
        ),
        (
            "keystore:\n  vault:\n    name: a\n    prefix: b\n",
            "keystore.vault.name and keystore.vault.prefix are both set and differ",
        ),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: [\n", "invalid YAML"),
    ],
)
def test_unconvertible(tmp_path, text, message):
    path = tmp_path / "old.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        migrate_config(str(path))


def test_missing_and_broken_toml(tmp_path):
    with pytest.raises(ConfigError, match="no such file or directory"):
        migrate_config(str(tmp_path / "nope.toml"))
    path = tmp_path / "bad.toml"
    path.write_text("[tls\nkey = 1\n")
    with pytest.raises(ConfigError, match="not a valid TOML file"):
        migrate_config(str(path))


def test_without_tomllib(monkeypatch, tmp_path):
    """Python 3.10 has no tomllib: TOML is still recognised, converting it needs 3.11."""
    from kes_flask.config import legacy

    monkeypatch.setattr(legacy, "tomllib", None)
    path = tmp_path / "config.yml"
    path.write_text(SEED_TOML.read_text())
    with pytest.raises(ConfigError, match="this is a TOML config file"):
        parse_config(path.read_text(), {}, "config.yml")
    toml_path = tmp_path / "kes-config.toml"
    toml_path.write_text(SEED_TOML.read_text())
    with pytest.raises(ConfigError, match=r"needs Python 3\.11 or newer"):
        migrate_config(str(toml_path))
