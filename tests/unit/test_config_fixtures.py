"""Upstream kesconf test fixtures (config.md §11), the seed tutorials' configs and the example."""

from pathlib import Path

import pytest

from kes_flask.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "config"
SEEDS = DATA / "seeds"
ADMIN = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d"
JWT = (DATA / "testdata" / "vault-k8s-service-account").read_text()
SECOND = 10**9


@pytest.fixture(autouse=True)
def _in_data_dir(monkeypatch):
    """Relative paths (the k8s JWT file) resolve against the working directory, as upstream."""
    monkeypatch.chdir(DATA)


def load(name, env=None):
    return load_config(name, env or {})


def assert_common(config):
    assert config.admin_identity == ADMIN
    assert (config.tls.key, config.tls.cert) == ("./server.key", "./server.cert")
    assert config.address == "0.0.0.0:7373"
    assert config.warnings == ()


def test_fs_fixture():
    config = load("fs.yml")
    assert_common(config)
    assert (config.keystore.kind, config.keystore.path) == ("fs", "/tmp/keys")


def test_custom_api_fixture():
    text = (DATA / "custom-api.yml").read_text()
    assert not text.endswith("\n")  # verbatim: no trailing newline
    config = load("custom-api.yml")
    assert config.admin_identity == "disabled"
    assert (config.tls.key, config.tls.cert) == ("./private.key", "./public.crt")
    assert config.api["/v1/status"].timeout == 17 * SECOND
    assert config.api["/v1/status"].skip_auth is True
    assert config.api["/v1/metrics"].timeout == 22 * SECOND
    assert config.api["/v1/metrics"].skip_auth is True
    assert config.any_skip_auth  # client auth becomes "request, don't require"
    assert config.tls.auth == "off"
    assert (config.cache.any, config.cache.unused, config.cache.offline) == (
        300 * SECOND,
        30 * SECOND,
        0,
    )
    assert (config.keystore.kind, config.keystore.path) == ("fs", "/tmp/kes")


@pytest.mark.parametrize("name", ["vault.yml", "vault-approle.yml"])
def test_vault_approle_fixtures(name):
    config = load(name)
    assert_common(config)
    vault = config.keystore
    assert (vault.kind, vault.endpoint, vault.engine, vault.version) == (
        "vault",
        "https://127.0.0.1:8200",
        "kv",
        "v2",
    )
    assert (vault.namespace, vault.prefix) == ("ns1", "tenant-1")
    assert vault.approle.engine == "approle"
    assert vault.approle.id == "db02de05-fa39-4855-059b-67221c5c2f63"
    assert vault.approle.secret == "6a174c20-f6de-a53c-74d2-6018fcceff64"
    assert vault.kubernetes is None


@pytest.mark.parametrize(
    ("name", "jwt"),
    [
        ("vault-k8s.yml", JWT),
        ("vault-k8s-with-service-account-file.yml", "./testdata/vault-k8s-service-account"),
    ],
)
def test_vault_kubernetes_fixtures(name, jwt):
    config = load(name)
    assert_common(config)
    vault = config.keystore
    assert (vault.endpoint, vault.engine, vault.version) == (
        "https://127.0.0.1:8201",
        "secrets",
        "v1",
    )
    assert (vault.namespace, vault.prefix) == ("ns2", "tenant-2")
    assert (vault.kubernetes.engine, vault.kubernetes.role) == ("kubernetes", "default")
    assert vault.kubernetes.jwt == jwt
    assert vault.approle is None


def test_jwt_data_file_matches_inline_token():
    assert len(JWT) == 957
    assert "/" not in JWT


def test_jwt_file_must_exist_relative_to_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(str(DATA / "vault-k8s-with-service-account-file.yml"), {})
    assert str(info.value).startswith(
        "kesconf: failed to read vault kubernetes JWT from './testdata/vault-k8s-service-account': "
    )


def test_aws_fixtures():
    config = load("aws.yml")
    assert_common(config)
    aws = config.keystore
    assert (aws.kind, aws.endpoint, aws.region) == (
        "aws",
        "secretsmanager.us-east-2.amazonaws.com",
        "us-east-2",
    )
    assert (aws.access_key, aws.secret_key) == (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    assert (aws.session_token, aws.kms_key) == ("", "")
    bare = load("aws-no-credentials.yml").keystore
    assert (bare.endpoint, bare.region) == (aws.endpoint, aws.region)
    assert (bare.access_key, bare.secret_key, bare.session_token) == ("", "", "")


# --- seed tutorials -----------------------------------------------------------------------------


def fill(name, **replacements):
    text = (SEEDS / name).read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_seed_000_vault_needs_identity_and_approle():
    with pytest.raises(ConfigError) as info:
        load("seeds/000-vault-approle.yml")
    assert str(info.value) == "kesconf: invalid admin identity: no admin identity"
    text = fill(
        "000-vault-approle.yml",
        **{
            'identity: ""': f"identity: {ADMIN}",
            'id:     ""': "id: my-role-id",
            'secret: ""': "secret: my-secret-id",
        },
    )
    config = parse_config(text, {})
    vault = config.keystore
    assert (vault.endpoint, vault.version, vault.engine) == ("https://127.0.0.1:8200", "v1", "kv")
    assert (vault.approle.id, vault.approle.secret) == ("my-role-id", "my-secret-id")
    assert (config.tls.key, config.tls.cert) == ("private.key", "public.crt")


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("000-keystore-prefix.yml", "prefix", "<tenant-name>"),
        ("000-keystore-namespace.yml", "namespace", "<vault-namespace>"),
    ],
)
def test_seed_000_keystore_fragments(name, field, value):
    text = "admin: {identity: disabled}\ntls: {key: k, cert: c}\n" + fill(
        name, **{'id:     ""': "id: i", 'secret: ""': "secret: s"}
    )
    config = parse_config(text, {}, "config.yml")
    assert getattr(config.keystore, field) == value
    assert config.keystore.status_ping == 10 * SECOND
    assert config.keystore.tls.ca == "vault.crt"
    assert config.warnings == (
        "config.yml: line 10: unknown key 'keystore.vault.approle.retry' (ignored; no longer "
        "configurable; 'kes-flask migrate-config <file>' converts old config files)",
    )


def test_seed_001_vault_with_retry_key():
    with pytest.raises(ConfigError) as info:
        load("seeds/001-vault.yml")
    error, note = str(info.value).split("\n")
    assert (
        error == "kesconf: invalid vault keystore: invalid approle config: no approle ID specified"
    )
    # the unknown key is shown with the error, not lost (issue #10)
    assert note.startswith("note: ") and "unknown key 'keystore.vault.approle.retry'" in note
    text = fill("001-vault.yml", **{'id: ""': "id: i", 'secret: ""': "secret: s"})
    config = parse_config(text, {}, "config.yml")
    assert config.admin_identity == "disabled"
    assert config.policies[0].name == "my-app"
    assert config.policies[0].allow == (
        "/v1/key/create/my-key*",
        "/v1/key/generate/my-key*",
        "/v1/key/decrypt/my-key*",
    )
    assert config.policies[0].identities == (
        "02ef5321ca409dbc7b10e7e8ee44d1c3b91e4bf6e2198befdebee6312745267b",
    )
    assert config.keystore.status_ping == 10 * SECOND
    assert len(config.warnings) == 1 and "keystore.vault.approle.retry" in config.warnings[0]


def test_seed_002_toml_is_rejected_with_migration_advice():
    with pytest.raises(ConfigError) as info:
        load("seeds/002-kes-config.toml")
    assert "kes-flask migrate-config seeds/002-kes-config.toml > config.yml" in str(info.value)


def test_seed_003_azure():
    with pytest.raises(ConfigError) as info:
        load("seeds/003-azure.yml")
    assert str(info.value) == "kesconf: invalid Azure keyvault keystore: no tenant ID specified"
    text = fill(
        "003-azure.yml",
        **{
            'tenant_id: ""': "tenant_id: t",
            'client_id: ""': "client_id: c",
            'client_secret: ""': "client_secret: s",
        },
    )
    azure = parse_config(text, {}).keystore
    assert (azure.endpoint, azure.auth, azure.tenant_id) == (
        "https://kes-test-1.vault.azure.net",
        "credentials",
        "t",
    )


def test_seed_003_yaml_overview_is_rejected():
    with pytest.raises(ConfigError) as info:
        load("seeds/003-yaml-overview.yml")
    source = "seeds/003-yaml-overview.yml"
    assert str(info.value).splitlines() == [
        f"{source}: line 32: duplicate key 'allow' (already defined at line 15)",
        f"{source}: line 36: duplicate key 'deny' (already defined at line 25)",
        f"{source}: line 39: duplicate key 'identities' (already defined at line 28)",
    ]


def test_seed_003_yaml_overview_without_duplicates_still_fails():
    text = (SEEDS / "003-yaml-overview.yml").read_text().replace("\n    my-app:\n", "\n  my-app:\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert str(info.value).split("\n")[0] == (
        "kesconf: referenced env. variable 'MINIO_IDENTITY' in line '29' not found"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, {"MINIO_IDENTITY": "m", "ROOT_IDENTITY": "r"})
    assert str(info.value).startswith("kesconf: invalid admin identity: no admin identity\nhint:")
    fixed = text.replace("root: ${ROOT_IDENTITY}", "admin:\n  identity: ${ROOT_IDENTITY}")
    with pytest.raises(ConfigError) as info:
        parse_config(fixed, {"MINIO_IDENTITY": "m", "ROOT_IDENTITY": "r"})
    error, *notes = str(info.value).split("\n")
    assert error == "kesconf: invalid Azure keyvault keystore: no endpoint specified"
    assert all(note.startswith("note: <config>: line ") for note in notes)


def test_seed_004_fs():
    config = load("seeds/004-fs.yml")
    assert config.admin_identity == "disabled"
    assert (config.keystore.kind, config.keystore.path) == ("fs", "./keys")
    assert config.policies[0].allow[0] == "/v1/key/create/minio-*"


# --- the shipped example ------------------------------------------------------------------------


def test_config_example_loads_with_documented_values():
    config = load_config(str(ROOT / "config.example.yml"), {})
    assert config.warnings == ()
    assert config.address == "0.0.0.0:7373"
    assert config.admin_identity == "disabled"
    tls = config.tls
    assert (tls.key, tls.cert, tls.password, tls.auth, tls.ca) == (
        "private.key",
        "public.crt",
        "",
        "off",
        "",
    )
    assert (tls.proxy_identities, tls.proxy_cert_header) == ((), "")
    assert (config.cache.expiry_any, config.cache.expiry_unused, config.cache.expiry_offline) == (
        300 * SECOND,
        30 * SECOND,
        0,
    )
    assert (config.log.error, config.log.audit) == (0, 0)
    assert config.api["/v1/ready"].skip_auth is False
    assert config.api["/v1/ready"].timeout == 15 * SECOND
    assert not config.any_skip_auth
    (policy,) = config.policies
    assert policy.name == "minio"
    assert policy.allow == (
        "/v1/key/create/minio-*",
        "/v1/key/generate/minio-*",
        "/v1/key/decrypt/minio-*",
    )
    assert policy.deny == ("/v1/key/decrypt/minio-internal-*",)
    assert policy.identities == ()
    assert config.keys == ()
    assert (config.keystore.kind, config.keystore.path) == ("fs", "./keys")
