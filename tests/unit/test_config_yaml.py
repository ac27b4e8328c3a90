"""YAML-level behaviour: 1.2 scalars, per-field conversion, duplicates, aliases, bad input."""

import time
from pathlib import Path

import pytest

from kes_flask.config import ConfigError, load_config, parse_config

DATA = Path(__file__).resolve().parents[1] / "data" / "config"
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
    return parse_config(BASE + extra, env or {}, "config.yml")


def error(text, env=None):
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {}, "config.yml")
    return str(info.value)


# --- strings keep their raw text (config.md §1.2) -----------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("on", "on"),
        ("yes", "yes"),
        ("0123", "0123"),
        ("1.0", "1.0"),
        ("0x1F", "0x1F"),
        ("true", "true"),
        ("1:30", "1:30"),
        ("2024-01-01", "2024-01-01"),
        ("'quoted  inner '", "quoted  inner "),
        ("~", ""),
        ("null", ""),
        ("Null", ""),
        ("NULL", ""),
        ("", ""),
        ("'~'", "~"),
        ("! 42", "42"),
        ("!!str 42", "42"),
    ],
)
def test_string_fields_take_raw_text(written, value):
    assert load(f"address: {written}\n").address == value


def test_block_scalar_is_a_string():
    config = load("address: |\n  a\n  b\n")
    assert config.address == "a\nb\n"


def test_string_field_rejects_mapping_and_list():
    assert error(BASE + "address: {a: b}\n") == (
        "config.yml: line 9: address: expected a string, found a mapping"
    )
    assert "address: expected a string, found a list" in error(BASE + "address: [a]\n")


# --- durations ----------------------------------------------------------------------------------


def test_plain_zero_duration_rejected_quoted_zero_accepted():
    message = error(BASE + "cache:\n  expiry:\n    any: 0\n")
    assert message == (
        "config.yml: line 11: cache.expiry.any: cannot parse integer 0 as a duration: "
        'durations need a unit, e.g. "5m" or "30s"'
    )
    assert load("cache:\n  expiry:\n    any: '0'\n").cache.expiry_any == 0
    assert load("cache:\n  expiry:\n    any: 0s\n").cache.expiry_any == 0


@pytest.mark.parametrize("written", ['""', "'15'", "1d", "1.5", "true", "15", "{a: 1}"])
def test_invalid_durations(written):
    message = error(BASE + f"api:\n  /v1/status:\n    timeout: {written}\n")
    assert message.startswith("config.yml: line 11: api./v1/status.timeout: ")


def test_null_duration_means_not_set():
    assert load("api:\n  /v1/status:\n    timeout:\n").api["/v1/status"].timeout == 0
    assert load("api:\n  /v1/status:\n    timeout: ~\n").api["/v1/status"].timeout == 0


def test_duration_message_says_what_is_wrong():
    message = error(BASE + "cache:\n  expiry:\n    unused: 1d\n")
    assert 'cache.expiry.unused: cannot parse "1d" as a duration' in message
    assert 'unknown unit "d"' in message


# --- skip_auth booleans -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("yes", True),
        ("'yes'", True),
        ("on", True),
        ('"ON"', True),
        ("y", True),
        ("no", False),
        ("'off'", False),
        ("N", False),
        ("", False),
        ("~", False),
    ],
)
def test_skip_auth_accepted(written, value):
    config = load(f"api:\n  /v1/status:\n    skip_auth: {written}\n")
    assert config.api["/v1/status"].skip_auth is value
    assert config.any_skip_auth is value


@pytest.mark.parametrize("written", ["'true'", '"false"', "1", "0", "maybe", "tRue", "[true]"])
def test_skip_auth_rejected(written):
    message = error(BASE + f"api:\n  /v1/status:\n    skip_auth: {written}\n")
    assert message.startswith("config.yml: line 11: api./v1/status.skip_auth: ")


def test_skip_auth_messages():
    assert error(BASE + "api:\n  /v1/status:\n    skip_auth: maybe\n") == (
        'config.yml: line 11: api./v1/status.skip_auth: cannot parse "maybe" as a boolean '
        "(use true or false)"
    )
    assert 'quoted "true"' in error(BASE + "api:\n  /v1/status:\n    skip_auth: 'true'\n")


# --- lists --------------------------------------------------------------------------------------


def test_list_fields_reject_single_scalars_and_accept_null():
    message = error(BASE + "policy:\n  p:\n    allow: /v1/key/create/*\n")
    assert (
        message == "config.yml: line 11: policy.p.allow: expected a list of strings, found a string"
    )
    config = load("policy:\n  p:\n    allow:\n    identities: ~\n")
    assert config.policies[0].allow == ()
    assert config.policies[0].identities == ()


def test_list_item_must_be_scalar():
    message = error(BASE + "policy:\n  p:\n    deny:\n    - a\n    - {b: c}\n")
    assert message == "config.yml: line 13: policy.p.deny[1]: expected a string, found a mapping"


def test_several_type_errors_are_all_reported_in_line_order():
    message = error(BASE + "address: [x]\ncache:\n  expiry:\n    any: 1\n    unused: 2\n")
    assert message.splitlines() == [
        "config.yml: line 9: address: expected a string, found a list",
        "config.yml: line 12: cache.expiry.any: cannot parse integer 1 as a duration: "
        'durations need a unit, e.g. "5m" or "30s"',
        "config.yml: line 13: cache.expiry.unused: cannot parse integer 2 as a duration: "
        'durations need a unit, e.g. "5m" or "30s"',
    ]


def test_section_must_be_a_mapping():
    assert (
        error(BASE + "cache: 5m\n")
        == "config.yml: line 9: cache: expected a mapping, found a string"
    )
    assert "keys: expected a list, found a mapping" in error(BASE + "keys: {name: a}\n")


# --- document structure -------------------------------------------------------------------------


def test_duplicate_keys_at_any_level_name_both_lines():
    assert error(BASE + "admin:\n  identity: x\n") == (
        "config.yml: line 9: duplicate key 'admin' (already defined at line 1)"
    )
    text = "admin:\n  identity: a\n  identity: b\n" + BASE.split("\n", 2)[2]
    assert error(text) == "config.yml: line 3: duplicate key 'identity' (already defined at line 2)"


def test_quoted_and_plain_keys_are_the_same_key():
    assert "duplicate key 'address'" in error(BASE + "address: a\n'address': b\n")


def test_only_the_first_document_is_read():
    config = parse_config(BASE + "---\nadmin:\n  identity: ''\n", {})
    assert config.admin_identity == "disabled"


def test_anchors_aliases_and_merge_keys():
    config = load(
        "x-vault: &vault\n"
        "  endpoint: https://vault:8200\n"
        "  approle: {id: role, secret: s3cret}\n"
        "policy:\n"
        "  a: &pol\n"
        "    allow: [/v1/key/create/*]\n"
        "  b: *pol\n"
    )
    assert [p.name for p in config.policies] == ["a", "b"]
    assert config.policies[1].allow == ("/v1/key/create/*",)
    assert config.warnings == ("config.yml: line 9: unknown key 'x-vault' (ignored)",)
    text = (
        "admin: {identity: disabled}\ntls: {key: k, cert: c}\n"
        "common: &c {endpoint: https://vault:8200, prefix: from-merge, engine: e1}\n"
        "other: &o {engine: e2, namespace: ns}\n"
        "keystore:\n  vault:\n    <<: [*c, *o]\n    prefix: explicit\n"
        "    approle: {id: i, secret: s}\n"
    )
    vault = parse_config(text, {}).keystore
    assert (vault.endpoint, vault.prefix, vault.engine, vault.namespace) == (
        "https://vault:8200",
        "explicit",
        "e1",
        "ns",
    )


def test_anchor_redefinition_is_allowed():
    config = load("a: &x one\nb: &x two\naddress: *x\n")
    assert config.address == "two"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file(text):
    assert "empty" in error(text)


def test_null_document_is_all_defaults():
    assert error("---\n") == "kesconf: invalid admin identity: no admin identity"
    assert error("~\n") == "kesconf: invalid admin identity: no admin identity"


@pytest.mark.parametrize(("text", "found"), [("- a\n", "a list"), ("hello\n", "a string")])
def test_top_level_must_be_a_mapping(text, found):
    assert error(text) == (
        f"config.yml: line 1: the config must be a YAML mapping of keys to values, found {found}"
    )


def test_syntax_error_says_where_and_what():
    message = error("admin:\n  identity: [unclosed\ntls: x\n")
    assert message.startswith("config.yml: line 3, column 4: invalid YAML: ")
    assert "flow sequence" in message
    assert error("a: b\n c: d\n") == (
        "config.yml: line 2, column 3: invalid YAML: mapping values are not allowed here"
    )


def test_alias_bomb_is_refused_quickly():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    message = error("\n".join(lines) + "\n" + BASE)
    assert time.monotonic() - started < 15  # seconds of CPU, not minutes; generous under load
    assert "more than 100000 nodes" in message


def test_recursive_alias_and_deep_nesting_are_errors():
    assert "too deep" in error("a: &a [*a]\n" + BASE)
    assert "nesting deeper than 64 levels" in error("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nesting deeper" in error("a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)))


def test_unknown_keys_produce_warnings_with_lines_and_hints():
    config = load(
        "root: abc\nfoo: 1\ncache:\n  expiry:\n    all: 5m\npolicy:\n  p:\n    paths: [/v1/*]\n"
    )
    assert config.warnings[0].startswith(
        "config.yml: line 9: unknown key 'root' (ignored; renamed to admin.identity; "
        "'kes-flask migrate-config <file>' converts old config files)"
    )
    assert config.warnings[1] == "config.yml: line 10: unknown key 'foo' (ignored)"
    assert (
        "line 13: unknown key 'cache.expiry.all' (ignored; renamed to cache.expiry.any"
        in (config.warnings[2])
    )
    assert "line 16: unknown key 'policy.p.paths' (ignored; renamed to allow" in config.warnings[3]


def test_legacy_kes_keystore_section_is_ignored_with_a_warning():
    config = load("  kes:\n    endpoint: [https://127.0.0.1:7373]\n")
    assert config.keystore.kind == "fs"
    assert config.warnings == (
        "config.yml: line 9: keystore.kes is left over from old KES versions and ignored",
    )
    only_kes = BASE.replace("  fs:\n    path: /tmp/k\n", "  kes:\n    enclave: x\n")
    assert error(only_kes) == "kesconf: no keystore specified"


# --- files --------------------------------------------------------------------------------------


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "missing.yml"))
    assert str(info.value) == f"open {tmp_path / 'missing.yml'}: no such file or directory"
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value) == f"read {tmp_path}: is a directory"
    with pytest.raises(ConfigError) as info:
        load_config("")
    assert str(info.value) == "open : no such file or directory"


@pytest.mark.parametrize(
    "garbage",
    [
        bytes(range(256)),
        b"\x00\x01\x02binary",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"admin: \xff\xfe\x00",
    ],
)
def test_binary_garbage_is_a_config_error(tmp_path, garbage):
    path = tmp_path / "config.yml"
    path.write_bytes(garbage)
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "config.yml"
    path.write_bytes(BASE.encode() + b"address: \xc3\x28\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"{path}: line 9: not a text file")


def test_utf16_and_bom_files_load(tmp_path):
    path = tmp_path / "config.yml"
    path.write_bytes(BASE.encode("utf-16"))
    assert load_config(str(path), {}).admin_identity == "disabled"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_config(str(path), {}).admin_identity == "disabled"


def test_toml_config_is_recognised(tmp_path):
    toml = (DATA / "seeds" / "002-kes-config.toml").read_text()
    expected = (
        "this is a TOML config file, the format of KES v0.7 and older; kes-flask reads only "
        "YAML config files. Convert it with 'kes-flask migrate-config {0} > config.yml' and "
        "review the result."
    )
    for name in ("kes-config.toml", "config.yml"):
        path = tmp_path / name
        path.write_text(toml)
        with pytest.raises(ConfigError) as info:
            load_config(str(path))
        assert str(info.value) == f"{path}: " + expected.format(path)
    assert error(toml).startswith("config.yml: this is a TOML config file")


def test_yaml_in_a_toml_named_file_still_loads(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(BASE)
    assert load_config(str(path), {}).admin_identity == "disabled"
