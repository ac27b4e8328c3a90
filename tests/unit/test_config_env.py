"""``${VAR}`` references (config.md §3)."""

import pytest

from kes_flask.config import ConfigError, parse_config

BASE = """admin:
  identity: disabled
tls:
  key: k
  cert: c
keystore:
  fs:
    path: /tmp/k
"""


def load(extra="", env=None):
    return parse_config(BASE + extra, env if env is not None else {}, "config.yml")


def error(extra="", env=None, text=None):
    with pytest.raises(ConfigError) as info:
        parse_config(text if text is not None else BASE + extra, env or {}, "config.yml")
    return str(info.value)


ENV = {"VAR": "value", "A": "a", "B": "b", "EMPTY": ""}


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("${VAR}", "value"),
        ('"${VAR}"', "value"),
        ("'  ${VAR}  '", "value"),
        ("${ VAR }", "value"),
        ('"${ VAR}"', "value"),
        ("${EMPTY}", ""),
        ("prefix-${VAR}", "prefix-${VAR}"),
        ("$VAR", "$VAR"),
        ("${VAR}suffix", "${VAR}suffix"),
        ("x${VAR}", "x${VAR}"),
    ],
)
def test_reference_syntax(written, value):
    assert load(f"address: {written}\n", ENV).address == value


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("${VAR:-x}", "VAR:-x"),
        ("${}", ""),
        ("${A}${B}", "A}${B"),
        ("${A}-${B}", "A}-${B"),  # starts with ${ and ends with }: one (odd) name
        ("${MISSING}", "MISSING"),
    ],
)
def test_unset_names(written, name):
    assert error(f"address: '{written}'\n", ENV) == (
        f"kesconf: referenced env. variable '{name}' in line '9' not found"
    )


def test_unset_variable_reports_its_line():
    text = BASE.replace("path: /tmp/k", "path: ${KEYS_DIR}")
    assert error(text=text) == "kesconf: referenced env. variable 'KEYS_DIR' in line '8' not found"


def test_first_unset_variable_wins_over_type_errors():
    message = error("cache:\n  expiry:\n    any: 0\n    unused: ${U}\n    offline: ${O}\n")
    assert message == "kesconf: referenced env. variable 'U' in line '12' not found"


def test_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("KES_FLASK_TEST_ADDR", "127.0.0.1:7000")
    assert parse_config(BASE + "address: ${KES_FLASK_TEST_ADDR}\n").address == "127.0.0.1:7000"


def test_empty_value_then_validated():
    text = BASE.replace("identity: disabled", "identity: ${ADMIN}")
    assert (
        error(text=text, env={"ADMIN": ""}) == "kesconf: invalid admin identity: no admin identity"
    )
    assert parse_config(text, {"ADMIN": "abc"}).admin_identity == "abc"


def test_substitution_is_not_reparsed_or_recursive():
    config = load("address: ${A}\ntls2: 1\n", {"A": "[a, b] # ${B}"})
    assert config.address == "[a, b] # ${B}"
    assert load("address: ${A}\n", {"A": "${B}", "B": "b"}).address == "${B}"


def test_not_expanded_in_version_policy_patterns_and_map_keys():
    assert error(text="version: ${V}\n" + BASE, env={"V": "v1"}) == (
        "edge: invalid server config version '${V}'"
    )
    config = load(
        "policy:\n  ${NAME}:\n    allow:\n    - ${P}\n    deny: ['${P}']\n"
        "    identities:\n    - ${ID}\n"
        "api:\n  ${PATH}:\n    timeout: 5s\n",
        {"NAME": "n", "P": "p", "ID": "id-1", "PATH": "/v1/status"},
    )
    policy = config.policies[0]
    assert (policy.name, policy.allow, policy.deny, policy.identities) == (
        "${NAME}",
        ("${P}",),
        ("${P}",),
        ("id-1",),
    )
    assert list(config.api) == ["${PATH}"]


def test_list_items_expand_one_by_one():
    text = (
        "admin: {identity: disabled}\n"
        "tls:\n  key: k\n  cert: c\n  proxy:\n    identities: ['${P1}', literal, '${P2}']\n"
        "keystore:\n  gcp:\n    secretmanager:\n      project_id: ${PROJECT}\n"
        "      scopes:\n      - ${SCOPE}\n      - https://x\n"
    )
    env = {"P1": "proxy-1", "P2": "proxy-2", "PROJECT": "my-project", "SCOPE": "scope-1"}
    config = parse_config(text, env)
    assert config.tls.proxy_identities == ("proxy-1", "literal", "proxy-2")
    assert config.keystore.project_id == "my-project"
    assert config.keystore.scopes == ("scope-1", "https://x")
    del env["P2"]
    assert error(text=text, env=env) == (
        "kesconf: referenced env. variable 'P2' in line '6' not found"
    )


@pytest.mark.parametrize(
    ("value", "nanoseconds"), [("5m", 300_000_000_000), ("0", 0), ("1h30m", 5_400_000_000_000)]
)
def test_durations_from_env(value, nanoseconds):
    assert load("cache:\n  expiry:\n    any: ${T}\n", {"T": value}).cache.expiry_any == nanoseconds


@pytest.mark.parametrize("value", ["", "1d", "15", " 5m"])
def test_invalid_durations_from_env(value):
    message = error("cache:\n  expiry:\n    any: ${T}\n", {"T": value})
    assert message.startswith("config.yml: line 11: cache.expiry.any: cannot parse")


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("false", False),
        ("FaLsE", False),
        ("yes", True),
        ("on", True),
        ("y", True),
        ("off", False),
        ("no", False),
    ],
)
def test_skip_auth_from_env(value, result):
    config = load("api:\n  /v1/metrics:\n    skip_auth: ${S}\n", {"S": value})
    assert config.api["/v1/metrics"].skip_auth is result


@pytest.mark.parametrize("value", ["1", "", "maybe", " true"])
def test_invalid_skip_auth_from_env(value):
    assert error("api:\n  /v1/metrics:\n    skip_auth: ${S}\n", {"S": value}) == (
        f'config.yml: line 11: api./v1/metrics.skip_auth: cannot parse "{value}" as a boolean '
        "(use true or false)"
    )


def test_keystore_secrets_from_env():
    text = BASE.replace(
        "  fs:\n    path: /tmp/k\n",
        "  vault:\n    endpoint: ${VAULT_ADDR}\n    approle:\n"
        "      id: ${ROLE_ID}\n      secret: ${ROLE_SECRET}\n    status:\n      ping: ${PING}\n",
    )
    env = {"VAULT_ADDR": "https://v:8200", "ROLE_ID": "r", "ROLE_SECRET": "s", "PING": "30s"}
    vault = parse_config(text, env).keystore
    assert (vault.endpoint, vault.approle.id, vault.approle.secret) == ("https://v:8200", "r", "s")
    assert vault.status_ping == 30_000_000_000
