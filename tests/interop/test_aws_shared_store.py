"""Go KES v0.24.0 and kes-flask side by side on ONE AWS Secrets Manager (a real moto server):
each reads what the other wrote, decrypts what the other sealed, and the stored secrets are
the same bytes whoever wrote them."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from kes_flask.client import ErrKeyNotFound, KesServerError
from kes_flask.crypto import KeyVersion
from tests.backends import aws as aws_backend
from tests.fakes.moto import MotoServer
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer

CONTEXT = b'{"my-bucket":"my-bucket/my-object"}'


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    # Go KES v0.24.0 trusts only the system CAs for AWS (it ignores SSL_CERT_FILE), so this one
    # moto speaks plain HTTP on loopback; every other AWS test runs over HTTPS.
    moto = MotoServer(tmp_path_factory.mktemp("moto-plain"), plain_http=True).start()
    config = f"""admin:
  identity: {pki["admin"].identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
cache:
  expiry:
    any: 1s
{aws_backend.section(moto.endpoint)}"""
    go = GoKesServer(go_kes, tmp_path_factory.mktemp("aws-go"), pki, config).start()
    flask = KesServer(tmp_path_factory.mktemp("aws-flask"), pki, config, workers=1).start()
    raw = boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint,
        region_name=aws_backend.REGION,
        aws_access_key_id="AKIAOPERATOR00000001",
        aws_secret_access_key="operator",
        verify=moto.tls.ca,
    )
    yield {
        "go": go.client("admin"),
        "flask": flask.client("admin"),
        "raw": raw,
        "servers": (go, flask),
    }
    go.stop()
    flask.stop()


@pytest.mark.parametrize(("writer", "reader"), [("go", "flask"), ("flask", "go")])
def test_keys_written_by_one_are_served_by_the_other(shared, writer, reader):
    name = f"aws-made-by-{writer}"
    shared[writer].create_key(name)
    assert shared[reader].describe_key(name) == shared[writer].describe_key(name)
    assert name in shared[reader].list_keys()
    dek = shared[writer].generate_key(name, CONTEXT)
    assert shared[reader].decrypt(name, dek.ciphertext, CONTEXT) == dek.plaintext
    sealed = shared[reader].encrypt(name, b"payload", CONTEXT)
    assert shared[writer].decrypt(name, sealed, CONTEXT) == b"payload"
    assert shared[reader].hmac(name, b"m") == shared[writer].hmac(name, b"m")
    stored = shared["raw"].get_secret_value(SecretId=name)
    assert "SecretBinary" not in stored and stored["SecretString"].startswith("CiQKI")
    assert (
        KeyVersion.parse(stored["SecretString"]).created_by
        == shared[writer].describe_self()["identity"]
    )


def test_both_store_the_same_shape_and_delete_the_same_way(shared):
    shared["go"].import_key("aws-go-imported", bytes(range(32)), "AES256")
    shared["flask"].import_key("aws-flask-imported", bytes(range(32)), "AES256")
    raw = shared["raw"]
    go_secret = raw.describe_secret(SecretId="aws-go-imported")
    flask_secret = raw.describe_secret(SecretId="aws-flask-imported")
    for field in ("Description", "Tags", "KmsKeyId"):
        assert go_secret.get(field) == flask_secret.get(field)
    go_value = KeyVersion.parse(raw.get_secret_value(SecretId="aws-go-imported")["SecretString"])
    flask_value = KeyVersion.parse(
        raw.get_secret_value(SecretId="aws-flask-imported")["SecretString"]
    )
    assert go_value.secret_key == flask_value.secret_key
    for client in (shared["go"], shared["flask"]):
        client.delete_key("aws-never-existed")  # both: a forced delete of a missing secret is 200
    shared["flask"].delete_key("aws-go-imported")
    with pytest.raises(KesServerError) as missing:
        shared["flask"].describe_key("aws-go-imported")
    assert missing.value == ErrKeyNotFound
    shared["go"].create_key("aws-go-imported")  # no recovery window: the name is free at once
