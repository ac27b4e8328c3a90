"""Go KES and kes-flask side by side on ONE filesystem key store: everything either writes,
the other reads; every ciphertext either makes, the other decrypts; HMACs agree."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kes_flask.client import ErrDecrypt, KesServerError
from tests.interop.peers import GoCLI, GoKesServer
from tests.kes_server import PKI, KesServer, config_yaml

CONTEXT = b'{"my-bucket":"my-bucket/my-object"}'


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    keys = tmp_path_factory.mktemp("shared-keys")
    # a short cache so each server notices the other's deletes quickly
    config = config_yaml(pki, str(keys), extra="cache:\n  expiry:\n    any: 1s\n")
    go = GoKesServer(go_kes, tmp_path_factory.mktemp("shared-go"), pki, config).start()
    flask = KesServer(tmp_path_factory.mktemp("shared-flask"), pki, config, workers=2).start()
    yield {
        "go": go.client("admin"),
        "flask": flask.client("admin"),
        "keys": keys,
        "servers": (go, flask),
    }
    go.stop()
    flask.stop()


@pytest.mark.parametrize(("writer", "reader"), [("go", "flask"), ("flask", "go")])
def test_keys_created_by_one_are_used_by_the_other(shared, writer, reader):
    name = f"made-by-{writer}"
    shared[writer].create_key(name)
    assert shared[reader].describe_key(name) == shared[writer].describe_key(name)
    assert name in shared[reader].list_keys()
    for context in (b"", CONTEXT):
        dek = shared[writer].generate_key(name, context)
        assert shared[reader].decrypt(name, dek.ciphertext, context) == dek.plaintext
        dek = shared[reader].generate_key(name, context)
        assert shared[writer].decrypt(name, dek.ciphertext, context) == dek.plaintext
    sealed = shared[writer].encrypt(name, b"payload", CONTEXT)
    assert shared[reader].decrypt(name, sealed, CONTEXT) == b"payload"
    with pytest.raises(KesServerError) as wrong:
        shared[reader].decrypt(name, sealed, b"{}")
    assert wrong.value == ErrDecrypt
    assert shared[reader].hmac(name, b"root access key") == shared[writer].hmac(
        name, b"root access key"
    )


@pytest.mark.parametrize(("writer", "reader"), [("go", "flask"), ("flask", "go")])
def test_imported_keys_of_both_algorithms(shared, writer, reader):
    for cipher in ("AES256", "ChaCha20"):
        name = f"imported-{cipher.lower()}-by-{writer}"
        shared[writer].import_key(name, bytes(range(32)), cipher)
        assert shared[reader].describe_key(name)["algorithm"] == cipher
        sealed = shared[reader].encrypt(name, b"x", CONTEXT)
        assert shared[writer].decrypt(name, sealed, CONTEXT) == b"x"


def test_deletes_are_seen_by_the_other(shared):
    import time

    from kes_flask.client import ErrKeyNotFound

    shared["go"].create_key("short-lived")
    shared["flask"].describe_key("short-lived")
    shared["flask"].delete_key("short-lived")
    with pytest.raises(KesServerError) as missing:
        shared["go"].delete_key("short-lived")
    assert missing.value == ErrKeyNotFound
    time.sleep(2.5)  # Go's cache (any: 1s) has expired
    with pytest.raises(KesServerError) as missing:
        shared["go"].describe_key("short-lived")
    assert missing.value == ErrKeyNotFound


def test_go_cli_dek_decrypts_across_servers(shared, go_cli: GoCLI, pki: PKI):
    go, flask = shared["servers"]
    shared["go"].create_key("cli-shared")
    context = base64.b64encode(CONTEXT).decode()
    api_key = str(pki["admin"].api_key)
    made = go_cli.run("key", "dek", "cli-shared", context, server=go.endpoint, api_key=api_key)
    dek = json.loads(made.stdout)
    opened = go_cli.run(
        "key",
        "decrypt",
        "cli-shared",
        dek["ciphertext"],
        context,
        server=flask.endpoint,
        api_key=api_key,
    )
    assert json.loads(opened.stdout) == {"plaintext": dek["plaintext"]}


def test_files_are_identical_in_format(shared):
    keys: Path = shared["keys"]
    shared["go"].create_key("format-go")
    shared["flask"].create_key("format-flask")
    go_file, flask_file = (keys / "format-go").read_bytes(), (keys / "format-flask").read_bytes()
    assert go_file[:5] == flask_file[:5] == b"CiQKI"
    assert len(go_file) == len(flask_file)  # same fields; both created_by the same admin
    assert (
        (keys / "format-go").stat().st_mode & 0o777
        == (keys / "format-flask").stat().st_mode & 0o777
        == 0o600
    )
