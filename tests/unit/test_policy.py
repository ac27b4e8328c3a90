"""Policy matching (api.md §7.3 vectors) and the start-time policy rules (config.md §4.6)."""

from __future__ import annotations

import pytest

from kes_flask.auth.names import valid_name, valid_pattern
from kes_flask.auth.policy import PatternSet, Policy, PolicySet
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import MemoryKeystoreConfig, PolicyConfig, ServerConfig, TLSConfig


def policy(allow=(), deny=()) -> Policy:
    return Policy.from_config(PolicyConfig("p", tuple(allow), tuple(deny)))


def test_empty_policy_denies_everything():
    empty = policy()
    for path in ("/v1/status", "/v1/key/create/my-key", "/v1/identity/list/a"):
        assert not empty.allows(path)


def test_exact_allow():
    status_only = policy(["/v1/status"])
    assert status_only.allows("/v1/status")
    assert not status_only.allows("/v1/key/create/my-key")
    assert not status_only.allows("/v1/identity/list/a")
    assert not status_only.allows("/v1/status/")


def test_prefix_allow_and_deny_wins():
    allow = ["/v1/key/create/my*", "/v1/key/create/your*"]
    p = policy(allow)
    assert p.allows("/v1/key/create/my-key")
    assert p.allows("/v1/key/create/your-key")
    assert not p.allows("/v1/identity/list/somekey")
    p = policy(allow, ["/v1/key/create/my-key*"])
    assert not p.allows("/v1/key/create/my-key")
    assert not p.allows("/v1/key/create/my-key1")
    assert p.allows("/v1/key/create/my-minio-key")
    assert p.allows("/v1/key/create/your-minio-key")


def test_star_is_special_only_at_the_end_and_crosses_slashes():
    assert policy(["/v1/*"]).allows("/v1/key/decrypt/a/b")
    mid = policy(["/v1/key/*/my-key"])
    assert not mid.allows("/v1/key/create/my-key")
    assert mid.allows("/v1/key/*/my-key")
    assert not policy([""]).allows("")


def test_pattern_set_compiles_exact_and_prefixes():
    compiled = PatternSet.compile(["/a", "/b*", "", "*"])
    assert compiled.exact == frozenset({"/a"})
    assert compiled.prefixes == ("/b", "")


ADMIN = "f" * 64


def config(*policies: PolicyConfig) -> ServerConfig:
    return ServerConfig(ADMIN, TLSConfig("k", "c"), MemoryKeystoreConfig(), policies=policies)


def test_policy_set_authorizes_admin_and_assigned_identities():
    app = "1" * 64
    rules = PolicySet.from_config(config(PolicyConfig("app", ("/v1/status",), identities=(app,))))
    assert rules.authorize(ADMIN, "/anything")
    assert rules.authorize(app, "/v1/status")
    assert not rules.authorize(app, "/v1/api")
    assert not rules.authorize("2" * 64, "/v1/status")
    assert not rules.authorize("", "/v1/status")
    assert rules.identities() == [ADMIN, app]


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        (
            (PolicyConfig("bad.name"),),
            "kes: policy name 'bad.name' is empty, too long or contains invalid characters",
        ),
        (
            (PolicyConfig("p", identities=("",)),),
            "kes: identity '' is empty, too long or contains invalid characters",
        ),
        (
            (PolicyConfig("a", identities=("x",)), PolicyConfig("b", identities=("x",))),
            "kes: cannot assign policy 'b' to 'x': identity already has a policy",
        ),
    ],
)
def test_policy_set_start_time_rules(policies, message):
    with pytest.raises(ConfigError) as err:
        PolicySet.from_config(config(*policies))
    assert str(err.value) == message


@pytest.mark.parametrize(
    "name", ["my-key", "abc123", "0", "123ABC321", "_-___---_", "_0", "0-Z", "my_key-0", "a" * 80]
)
def test_valid_names(name):
    assert valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "my.key",
        "key/",
        "☰",
        "hel<lo",
        "Εmacs",  # noqa: RUF001 - a Greek capital epsilon is the point
        "a" * 81,
        "_",
        "-a",
        "a-",
        "a b",
    ],
)
def test_invalid_names(name):
    assert not valid_name(name)


@pytest.mark.parametrize(
    "pattern",
    ["my-key", "abc123", "0", "123ABC321", "_-___---_", "_0", "0-Z", "*", "my*", "_-*", "", "a-*"],
)
def test_valid_patterns(pattern):
    assert valid_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "*-*",
        "my.key",
        "key/",
        "☰",
        "hel<lo",
        "Εmacs",  # noqa: RUF001 - a Greek capital epsilon is the point
        "a" * 81,
        "-*",
        "ab-",
        "_",
        "**",
    ],
)
def test_invalid_patterns(pattern):
    assert not valid_pattern(pattern)
