"""Semantic rules, their order and their exact ``kesconf:`` messages (config.md §4, §5)."""

import pytest

from kes_flask.config import ConfigError, parse_config
from kes_flask.config.model import LEVEL_OFF

ADMIN = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d"
HEAD = f"admin:\n  identity: {ADMIN}\ntls:\n  key: k\n  cert: c\n"
FS = "keystore:\n  fs:\n    path: /tmp/k\n"


def load(text, env=None):
    return parse_config(text, env or {}, "config.yml")


def error(text, env=None):
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return str(info.value)


def keystore_error(body):
    return error(HEAD + "keystore:\n" + body)


# --- version ------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["v1", "'v1'", "", "''"])
def test_accepted_versions(written):
    assert load(f"version: {written}\n" + HEAD + FS).admin_identity == ADMIN


@pytest.mark.parametrize(
    ("written", "shown"),
    [("1", "1"), ("V1", "V1"), ("v2", "v2"), ("~", "~"), ("null", "null"), ("NULL", "NULL")],
)
def test_rejected_versions(written, shown):
    assert error(f"version: {written}\n" + HEAD + FS) == (
        f"edge: invalid server config version '{shown}'"
    )


def test_version_must_be_a_scalar_and_wins_over_later_errors():
    assert error("version:\n  - v1\n" + HEAD + FS) == "kesconf: invalid config version at line '2'"
    # a bad version is reported before duplicate keys, type errors and unset variables
    text = "version: v0\nadmin: {identity: '${UNSET}'}\naddress: [x]\naddress: y\n"
    assert error(text) == "edge: invalid server config version 'v0'"


def test_version_only_checked_on_top_level_keys():
    assert load(HEAD + FS + "address: version\n").address == "version"


# --- admin, tls ---------------------------------------------------------------------------------


def test_admin_identity_required():
    assert error("tls: {key: k, cert: c}\n" + FS) == (
        "kesconf: invalid admin identity: no admin identity"
    )
    assert error("admin:\n  identity: ''\n") == "kesconf: invalid admin identity: no admin identity"


def test_root_key_hint():
    message = error("root: disabled\ntls: {key: k, cert: c}\n" + FS)
    assert message.splitlines() == [
        "kesconf: invalid admin identity: no admin identity",
        "hint: the top-level key 'root' of old KES versions was renamed to 'admin.identity'; "
        "'kes-flask migrate-config <file>' converts old config files",
    ]


def test_tls_key_and_cert_required_in_order():
    assert error(f"admin: {{identity: {ADMIN}}}\n" + FS) == (
        "kesconf: invalid tls config: no private key"
    )
    assert error(f"admin: {{identity: {ADMIN}}}\ntls: {{key: k}}\n" + FS) == (
        "kesconf: invalid tls config: no certificate"
    )


@pytest.mark.parametrize(
    ("written", "auth"), [("''", "off"), ("off", "off"), ("OFF", "off"), ("On", "on"), ("on", "on")]
)
def test_tls_auth_values(written, auth):
    assert load(HEAD + f"  auth: {written}\n" + FS).tls.auth == auth


@pytest.mark.parametrize("written", ["Maybe", "' on'", "verify", "true"])
def test_tls_auth_invalid_shows_raw_value(written):
    raw = written.strip("'")
    assert error(HEAD + f"  auth: {written}\n" + FS) == (
        f"kesconf: invalid tls config: invalid auth '{raw}'"
    )


def test_tls_fields_are_carried():
    tls = load(
        HEAD + "  password: pw\n  ca: ./ca\n  proxy:\n    identities: [p1, p2]\n"
        "    header:\n      cert: X-Tls-Client-Cert\n" + FS
    ).tls
    assert (tls.key, tls.cert, tls.password, tls.ca) == ("k", "c", "pw", "./ca")
    assert tls.proxy_identities == ("p1", "p2")
    assert tls.proxy_cert_header == "X-Tls-Client-Cert"


def test_proxy_identity_must_not_be_admin():
    assert error(HEAD + f"  proxy:\n    identities: [p1, {ADMIN}]\n" + FS) == (
        f"kesconf: invalid tls proxy: identity '{ADMIN}' is already admin"
    )


# --- policies -----------------------------------------------------------------------------------


def test_policies_keep_file_order_and_values():
    names = ["zeta", "alpha", "mid"]
    text = (
        HEAD
        + FS
        + "policy:\n"
        + "".join(
            f"  {name}:\n    allow: [/v1/key/create/{name}*]\n    identities: [id-{name}]\n"
            for name in names
        )
    )
    policies = load(text).policies
    assert [p.name for p in policies] == names
    assert policies[0].allow == ("/v1/key/create/zeta*",)
    assert policies[0].deny == ()
    assert policies[2].identities == ("id-mid",)


def test_policy_identity_checks():
    admin_case = (
        HEAD + FS + f"policy:\n  ok:\n    identities: [x]\n  bad:\n    identities: [{ADMIN}]\n"
    )
    assert (
        error(admin_case) == f"kesconf: invalid policy 'bad': identity '{ADMIN}' is already admin"
    )
    proxy_case = (
        HEAD
        + "  proxy:\n    identities: [proxy-1]\n"
        + FS
        + "policy:\n  p:\n    identities: [proxy-1]\n"
    )
    assert error(proxy_case) == (
        "kesconf: invalid policy 'p': identity 'proxy-1' is already a TLS proxy"
    )


def test_policy_name_and_identity_syntax_not_checked_at_load():
    config = load(
        HEAD + FS + "policy:\n  'bad name!':\n    identities: ['', x]\n  x:\n    identities: [x]\n"
    )
    assert [p.name for p in config.policies] == ["bad name!", "x"]


# --- cache, log, api, keys ----------------------------------------------------------------------


def test_cache_values():
    cache = load(
        HEAD + FS + "cache:\n  expiry:\n    any: 1h\n    unused: 5m\n    offline: 30m\n"
    ).cache
    assert (cache.any, cache.unused, cache.offline) == (3600 * 10**9, 300 * 10**9, 1800 * 10**9)
    defaults = load(HEAD + FS).cache
    assert (defaults.any, defaults.unused, defaults.offline) == (300 * 10**9, 30 * 10**9, 0)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("any", "kesconf: invalid cache expiry '-5m0s'"),
        ("unused", "kesconf: invalid cache unused expiry '-5m0s'"),
        ("offline", "kesconf: invalid offline cache expiry '-5m0s'"),
    ],
)
def test_negative_cache_expiry(field, message):
    assert error(HEAD + FS + f"cache:\n  expiry:\n    {field}: -5m\n") == message


def test_log_levels():
    log = load(HEAD + FS + "log:\n  error: warn\n  audit: 'off'\n").log
    assert (log.error, log.audit) == (4, LEVEL_OFF)
    assert load(HEAD + FS + "log:\n  error: on\n  audit: INFO+2\n").log.error == 0


@pytest.mark.parametrize(
    ("error_level", "audit_level", "message"),
    [
        ("warning", "info", "kesconf: invalid log level 'WARNING'"),
        (
            "info",
            "debug+x",
            "kesconf: invalid log level suffix 'X': strconv.Atoi: parsing \"X\": invalid syntax",
        ),
        ("bogus", "also-bogus", 'strconv.Atoi: parsing "BOGUS": invalid syntax'),
    ],
)
def test_invalid_log_levels(error_level, audit_level, message):
    assert error(HEAD + FS + f"log:\n  error: {error_level}\n  audit: {audit_level}\n") == message


def test_api_overrides():
    config = load(
        HEAD
        + FS
        + "api:\n  /v1/status:\n    timeout: 17s\n  /v1/key/create:\n    skip_auth: true\n"
    )
    assert config.api["/v1/status"].timeout == 17 * 10**9
    assert config.api["/v1/status"].skip_auth is False
    assert config.api["/v1/key/create"].skip_auth is True  # unknown path: kept, still counts
    assert config.any_skip_auth is True
    assert load(HEAD + FS + "api:\n  /v1/status:\n").api["/v1/status"].timeout == 0


def test_negative_api_timeout():
    assert error(
        HEAD + FS + "api:\n  /v1/ready: {timeout: 1s}\n  /v1/status:\n    timeout: -1s\n"
    ) == ("kesconf: invalid timeout '-1000000000' for API '/v1/status'")


def test_keys():
    config = load(HEAD + FS + "keys:\n  - name: b\n  - name: a\n  - {name: c, other: ignored}\n")
    assert config.keys == ("b", "a", "c")
    assert error(HEAD + FS + "keys:\n  - name: a\n  - name: b\n  - name: a\n") == (
        "kesconf: invalid key config: key 'a' is defined multiple times"
    )


def test_unusable_key_names_only_warn():
    config = load(HEAD + FS + "keys:\n  - name: my/key\n  - name: ok-key\n  - name: ''\n")
    assert config.keys == ("my/key", "ok-key", "")
    assert len(config.warnings) == 2
    assert config.warnings[0].startswith(
        "config.yml: keys[0].name: key name 'my/key' cannot be used through the API"
    )


# --- order of checks (config.md §5) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("tls: {auth: x}\nkeystore: {}\n", "kesconf: invalid admin identity: no admin identity"),
        (
            "admin: {identity: a}\ntls: {cert: c, auth: x}\n",
            "kesconf: invalid tls config: no private key",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c, auth: x, proxy: {identities: [a]}}\n",
            "kesconf: invalid tls config: invalid auth 'x'",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c, proxy: {identities: [a]}}\n"
            "policy: {p: {identities: [a]}}\n",
            "kesconf: invalid tls proxy: identity 'a' is already admin",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c}\npolicy: {p: {identities: [a]}}\n"
            "cache: {expiry: {any: -1s}}\n",
            "kesconf: invalid policy 'p': identity 'a' is already admin",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c}\ncache: {expiry: {offline: -1s}}\n"
            "log: {error: x}\n",
            "kesconf: invalid offline cache expiry '-1s'",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c}\nlog: {audit: x}\n"
            "api: {/v1/status: {timeout: -1s}}\n",
            'strconv.Atoi: parsing "X": invalid syntax',
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c}\napi: {/v1/status: {timeout: -1s}}\n"
            "keys: [{name: a}, {name: a}]\n",
            "kesconf: invalid timeout '-1000000000' for API '/v1/status'",
        ),
        (
            "admin: {identity: a}\ntls: {key: k, cert: c}\nkeys: [{name: a}, {name: a}]\n",
            "kesconf: invalid key config: key 'a' is defined multiple times",
        ),
        ("admin: {identity: a}\ntls: {key: k, cert: c}\n", "kesconf: no keystore specified"),
    ],
)
def test_first_failure_wins(text, first):
    assert error(text) == first


# --- keystore presence --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  fs:\n", "kesconf: no keystore specified"),
        ("  fs: ~\n", "kesconf: no keystore specified"),
        ("  fortanix: {}\n", "kesconf: no keystore specified"),
        ("  aws: {secretsmanager: }\n", "kesconf: no keystore specified"),
        ("  fs: {}\n", "kesconf: invalid fs keystore: no path specified"),
        ("  fs: {path: ''}\n  vault: {}\n", "kesconf: invalid fs keystore: no path specified"),
        (
            "  fs: {path: /k}\n  vault: {}\n",
            "kesconf: invalid keystore config: more than once keystore specified",
        ),
        (
            "  aws: {secretsmanager: {endpoint: e, region: r}}\n  entrust: {keycontrol: {}}\n",
            "kesconf: invalid keystore config: more than once keystore specified",
        ),
    ],
)
def test_keystore_presence(body, message):
    assert keystore_error(body) == message


def test_keystore_none_at_all():
    assert error(HEAD) == "kesconf: no keystore specified"
    assert error(HEAD + "keystore:\n") == "kesconf: no keystore specified"


def test_fs_keystore():
    keystore = load(HEAD + FS).keystore
    assert (keystore.kind, keystore.path) == ("fs", "/tmp/k")


# --- vault --------------------------------------------------------------------------------------

VAULT = "  vault:\n    endpoint: https://v:8200\n"
APPROLE = "    approle: {id: role-id, secret: role-secret}\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("  vault: {}\n", "no endpoint specified"),
        (VAULT, "no authentication method specified"),
        (VAULT + "    approle: ~\n    kubernetes:\n", "no authentication method specified"),
        (
            VAULT + "    approle: {}\n    kubernetes: {}\n",
            "more than one authentication method specified",
        ),
        (VAULT + "    approle: {secret: s}\n", "invalid approle config: no approle ID specified"),
        (VAULT + "    approle: {id: i}\n", "invalid approle config: no approle secret specified"),
        (VAULT + "    kubernetes: {role: r}\n", "invalid kubernetes config: no JWT specified"),
        (VAULT + APPROLE + "    transit: {}\n", "invalid transit config: no key name specified"),
        (
            VAULT + APPROLE + "    tls: {key: k}\n",
            "invalid tls config: no TLS certificate provided",
        ),
        (
            VAULT + APPROLE + "    tls: {cert: c}\n",
            "invalid tls config: no TLS private key provided",
        ),
        (VAULT + APPROLE + "    status: {ping: -10s}\n", "invalid status ping '-10s'"),
    ],
)
def test_vault_rules(body, problem):
    assert keystore_error(body) == f"kesconf: invalid vault keystore: {problem}"


def test_vault_defaults_and_values():
    vault = load(HEAD + "keystore:\n" + VAULT + APPROLE).keystore
    assert (vault.kind, vault.endpoint, vault.engine, vault.version) == (
        "vault",
        "https://v:8200",
        "kv",
        "v1",
    )
    assert (vault.namespace, vault.prefix, vault.kubernetes, vault.transit) == ("", "", None, None)
    assert (vault.approle.engine, vault.approle.id, vault.approle.secret) == (
        "approle",
        "role-id",
        "role-secret",
    )
    assert vault.status_ping == 15 * 10**9
    full = load(
        HEAD + "keystore:\n" + VAULT + "    engine: secrets\n    version: v2\n    namespace: ns\n"
        "    prefix: p\n    approle: {engine: auth2, namespace: /, id: i, secret: s}\n"
        "    transit: {key: tk}\n    tls: {key: ck, cert: cc, ca: ca}\n    status: {ping: 1m}\n"
    ).keystore
    assert (full.engine, full.version, full.namespace, full.prefix) == ("secrets", "v2", "ns", "p")
    assert (full.approle.engine, full.approle.namespace) == ("auth2", "/")
    assert (full.transit.engine, full.transit.key) == ("transit", "tk")
    assert (full.tls.key, full.tls.cert, full.tls.ca, full.status_ping) == (
        "ck",
        "cc",
        "ca",
        60 * 10**9,
    )


def test_vault_kubernetes_jwt_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sa").mkdir()
    (tmp_path / "sa" / "token").write_text("jwt-content")
    body = VAULT + "    kubernetes:\n      role: r\n      jwt: ./sa/token\n"
    kubernetes = load(HEAD + "keystore:\n" + body).keystore.kubernetes
    assert (kubernetes.engine, kubernetes.role, kubernetes.jwt) == ("kubernetes", "r", "./sa/token")
    missing = body.replace("./sa/token", "./sa/missing")
    assert keystore_error(missing) == (
        "kesconf: failed to read vault kubernetes JWT from './sa/missing': "
        "open ./sa/missing: no such file or directory"
    )
    assert keystore_error(body.replace("./sa/token", "./sa/")).startswith(
        "kesconf: failed to read vault kubernetes JWT from './sa/': read ./sa/: is a directory"
    )


# --- other backends -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  fortanix:\n    sdkms: {}\n",
            "kesconf: invalid fortanix SDKMS keystore: no endpoint specified",
        ),
        (
            "  fortanix:\n    sdkms: {endpoint: e, credentials: {}}\n",
            "kesconf: invalid fortanix SDKMS keystore: no API key specified",
        ),
        (
            "  gemalto:\n    keysecure: {}\n",
            "kesconf: invalid gemalto keysecure keystore: no endpoint specified",
        ),
        (
            "  gemalto:\n    keysecure: {endpoint: e}\n",
            "kesconf: invalid gemalto keysecure keystore: no token specified",
        ),
        (
            "  gcp:\n    secretmanager: {}\n",
            "kesconf: invalid GCP secretmanager keystore: no project ID specified",
        ),
        (
            "  aws:\n    secretsmanager: {}\n",
            "kesconf: invalid AWS secretsmanager keystore: no endpoint specified",
        ),
        (
            "  aws:\n    secretsmanager: {endpoint: e}\n",
            "kesconf: invalid AWS secretsmanager keystore: no region specified",
        ),
        (
            "  azure:\n    keyvault: {}\n",
            "kesconf: invalid Azure keyvault keystore: no endpoint specified",
        ),
        (
            "  azure:\n    keyvault: {endpoint: e, credentials: {}, managed_identity: {}}\n",
            "kesconf: invalid Azure keyvault keystore: "
            "more than one authentication method specified",
        ),
        (
            "  azure:\n    keyvault: {endpoint: e, credentials: {}}\n",
            "kesconf: invalid Azure keyvault keystore: no tenant ID specified",
        ),
        (
            "  azure:\n    keyvault: {endpoint: e, credentials: {tenant_id: t}}\n",
            "kesconf: invalid Azure keyvault keystore: no client ID specified",
        ),
        (
            "  azure:\n    keyvault: {endpoint: e, credentials: {tenant_id: t, client_id: c}}\n",
            "kesconf: invalid Azure keyvault keystore: no client secret specified",
        ),
        (
            "  azure:\n    keyvault: {endpoint: e, managed_identity: {}}\n",
            "kesconf: invalid Azure keyvault keystore: no client ID specified",
        ),
        (
            "  entrust:\n    keycontrol: {}\n",
            "kesconf: invalid Entrust KeyControl keystore: no endpoint specified",
        ),
        (
            "  entrust:\n    keycontrol: {endpoint: e}\n",
            "kesconf: invalid Entrust KeyControl keystore: no vault ID specified",
        ),
        (
            "  entrust:\n    keycontrol: {endpoint: e, vault_id: v}\n",
            "kesconf: invalid Entrust KeyControl keystore: no box ID specified",
        ),
        (
            "  entrust:\n    keycontrol: {endpoint: e, vault_id: v, box_id: b}\n",
            "kesconf: invalid Entrust KeyControl keystore: no username specified",
        ),
        (
            "  entrust:\n    keycontrol: {endpoint: e, vault_id: v, box_id: b,\n"
            "                 credentials: {username: u}}\n",
            "kesconf: invalid Entrust KeyControl keystore: no password specified",
        ),
    ],
)
def test_backend_rules(body, message):
    assert keystore_error(body) == message


def test_fortanix_gemalto_gcp_values():
    fortanix = load(
        HEAD
        + "keystore:\n  fortanix:\n    sdkms:\n      endpoint: https://sdkms\n      group_id: g\n"
        "      credentials: {key: api-key}\n      tls: {ca: ca.pem}\n"
    ).keystore
    assert (fortanix.kind, fortanix.endpoint, fortanix.group_id, fortanix.api_key, fortanix.ca) == (
        "fortanix",
        "https://sdkms",
        "g",
        "api-key",
        "ca.pem",
    )
    gemalto = load(
        HEAD + "keystore:\n  gemalto:\n    keysecure:\n      endpoint: https://ks\n"
        "      credentials: {token: t, domain: d, retry: 15s}\n"
    ).keystore
    assert (gemalto.kind, gemalto.token, gemalto.domain, gemalto.ca) == ("gemalto", "t", "d", "")
    gcp = load(
        HEAD + "keystore:\n  gcp:\n    secretmanager:\n      project_id: p\n"
        "      credentials: {client_email: e, client_id: i,\n"
        "                    private_key_id: k, private_key: 'a\\nb'}\n"
    ).keystore
    assert (gcp.kind, gcp.project_id, gcp.endpoint, gcp.scopes) == ("gcp", "p", "", ())
    assert (gcp.client_email, gcp.client_id, gcp.private_key_id, gcp.private_key) == (
        "e",
        "i",
        "k",
        "a\\nb",
    )


def test_azure_auth_kinds():
    def azure(extra):
        return load(
            HEAD + "keystore:\n  azure:\n    keyvault:\n      endpoint: https://kv\n" + extra
        ).keystore

    creds = azure("      credentials: {tenant_id: t, client_id: c, client_secret: s}\n")
    assert (creds.auth, creds.tenant_id, creds.client_id, creds.client_secret) == (
        "credentials",
        "t",
        "c",
        "s",
    )
    managed = azure("      managed_identity: {client_id: m}\n      credentials:\n")
    assert (managed.auth, managed.managed_identity_client_id) == ("managed_identity", "m")
    default = azure("")
    assert (default.kind, default.endpoint, default.auth) == ("azure", "https://kv", "default")


def test_entrust_values():
    entrust = load(
        HEAD
        + "keystore:\n  entrust:\n    keycontrol:\n      endpoint: https://kc\n      vault_id: v\n"
        "      box_id: b\n      credentials: {username: u, password: p}\n      tls: {ca: ca}\n"
    ).keystore
    assert (entrust.kind, entrust.endpoint, entrust.vault_id, entrust.box_id) == (
        "entrust",
        "https://kc",
        "v",
        "b",
    )
    assert (entrust.username, entrust.password, entrust.ca) == ("u", "p", "ca")


def test_secrets_never_appear_in_messages_or_repr():
    text = (
        HEAD.replace("  cert: c\n", "  cert: c\n  password: TLS-SECRET\n")
        + "keystore:\n  aws:\n    secretsmanager:\n      endpoint: e\n"
        "      credentials: {accesskey: a, secretkey: AWS-SECRET, token: AWS-TOKEN}\n"
    )
    message = error(text)
    assert message == "kesconf: invalid AWS secretsmanager keystore: no region specified"
    config = load(text.replace("      endpoint: e\n", "      endpoint: e\n      region: r\n"))
    assert config.keystore.secret_key == "AWS-SECRET"
    for secret in ("TLS-SECRET", "AWS-SECRET", "AWS-TOKEN"):
        assert secret not in repr(config)
    bad_type = error(HEAD + "  password: [SECRET]\n" + FS)
    assert bad_type == "config.yml: line 6: tls.password: expected a string, found a list"
