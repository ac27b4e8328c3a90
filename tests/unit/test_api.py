"""The HTTP API through Flask's test client: status codes and the exact client-matched messages.

Identity comes from a test-only environ key (the production app reads it from the TLS socket,
which the end-to-end tests cover with real gunicorn processes).
"""

from __future__ import annotations

import base64
import json

import pytest

from kes_flask.app import create_app
from kes_flask.auth.peer import ANONYMOUS_PEER, Peer
from kes_flask.config.model import (
    APIOverride,
    MemoryKeystoreConfig,
    PolicyConfig,
    ServerConfig,
    TLSConfig,
)
from kes_flask.crypto import Algorithm, KeyVersion, SecretKey
from kes_flask.keystore.memory import MemoryKeystore

ADMIN = "a" * 64
APP = "b" * 64
READER = "c" * 64
STRANGER = "d" * 64


def identify(environ):
    identity = environ.get("kes.test.identity")
    return ANONYMOUS_PEER if identity is None else Peer(identity)


def make_app(**overrides):
    config = ServerConfig(
        admin_identity=ADMIN,
        tls=TLSConfig(key="unused", cert="unused"),
        keystore=MemoryKeystoreConfig(),
        policies=(
            PolicyConfig(
                "my-app",
                allow=(
                    "/v1/key/create/my-app*",
                    "/v1/key/generate/my-app*",
                    "/v1/key/decrypt/my-app*",
                    "/v1/key/list/*",
                    "/v1/status",
                ),
                deny=("/v1/key/generate/my-app-internal*",),
                identities=(APP,),
            ),
            PolicyConfig("reader", allow=("/v1/key/describe/*",), identities=(READER,)),
        ),
        **overrides,
    )
    store = MemoryKeystore()
    app = create_app(config, keystore=store, identify=identify, start_background_tasks=False)
    return app, store


@pytest.fixture
def app_and_store():
    return make_app()


@pytest.fixture
def call(app_and_store):
    app, _ = app_and_store
    client = app.test_client()

    def do(method, path, identity=ADMIN, body=None, raw=None, headers=None):
        environ = {} if identity is None else {"kes.test.identity": identity}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return client.open(path, method=method, data=data, environ_base=environ, headers=headers)

    return do


def message(response) -> str:
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.data)["message"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- methods, routing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/key/create/k", "PUT"),
        ("DELETE", "/v1/key/generate/k", "PUT"),
        ("HEAD", "/v1/status", "GET"),
        ("POST", "/v1/status", "GET"),
        ("PUT", "/v1/key/delete/k", "DELETE"),
        ("PATCH", "/v1/key/describe/k", "GET"),
        ("POST", "/version", "GET"),
    ],
)
def test_wrong_method_is_405_with_accept_header_even_for_strangers(call, method, path, expected):
    response = call(method, path, identity=STRANGER)
    assert response.status_code == 405
    assert response.headers["Accept"] == expected
    if method != "HEAD":
        assert message(response) == f"received method '{method}' expected '{expected}'"


def test_error_body_has_the_go_shape(call):
    response = call("GET", "/v1/key/describe/missing")
    assert response.status_code == 404
    assert response.data == b'{"message":"key does not exist"\n}'


def test_unknown_paths_are_json_404(call):
    for path in ("/", "/v1", "/v2/x", "/v1/status/", "/v1/status/x", "/v1/key/bulk/decrypt/x"):
        response = call("GET", path)
        assert response.status_code == 404, path
        assert message(response) == "404 page not found"


def test_unclean_paths_redirect_to_the_clean_path(call):
    response = call("GET", "/v1/./key/../status")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/v1/status")


def test_post_is_accepted_for_put_routes(call):
    assert call("PUT", "/v1/key/create/k1").status_code == 200
    assert call("POST", "/v1/key/create/k2").status_code == 200


# --- authentication and authorization ------------------------------------------------------


def test_no_certificate_is_400(call):
    response = call("GET", "/v1/status", identity=None)
    assert response.status_code == 400
    assert message(response) == "tls: client certificate is required"


def test_unknown_identity_is_403(call):
    response = call("GET", "/v1/status", identity=STRANGER)
    assert response.status_code == 403
    assert message(response) == "not authorized: insufficient permissions"


def test_forbidden_comes_before_name_validation_and_key_lookup(call):
    assert call("POST", "/v1/key/create/bad.name", identity=STRANGER).status_code == 403
    assert call("POST", "/v1/key/decrypt/missing", identity=STRANGER).status_code == 403


def test_policy_allow_deny_and_prefix_semantics(call):
    assert call("POST", "/v1/key/create/my-app-key", identity=APP).status_code == 200
    assert call("POST", "/v1/key/generate/my-app-key", identity=APP).status_code == 200
    assert call("POST", "/v1/key/create/other", identity=APP).status_code == 403
    assert call("POST", "/v1/key/create/my-app-internal", identity=APP).status_code == 200
    # deny wins over the broader allow
    assert call("POST", "/v1/key/generate/my-app-internal", identity=APP).status_code == 403
    assert call("DELETE", "/v1/key/delete/my-app-key", identity=APP).status_code == 403


def test_slashless_list_root_is_authorised_as_the_root_with_slash(call):
    response = call("GET", "/v1/key/list", identity=APP)
    assert response.status_code == 200
    assert json.loads(response.data) == {"names": []}
    assert call("GET", "/v1/policy/list", identity=APP).status_code == 403


def test_version_needs_no_identity(call):
    response = call("GET", "/version", identity=None)
    assert response.status_code == 200
    assert set(json.loads(response.data)) == {"version", "commit"}


def test_skip_auth_makes_a_route_identify_only():
    app, _ = make_app(api={"/v1/status": APIOverride(skip_auth=True)})
    response = app.test_client().get("/v1/status")
    assert response.status_code == 200
    forbidden = app.test_client().get("/v1/api")
    assert forbidden.status_code == 400


# --- keys ----------------------------------------------------------------------------------


def test_create_describe_list_delete_cycle(call):
    assert call("POST", "/v1/key/create/my-key").data == b""
    again = call("POST", "/v1/key/create/my-key")
    assert (again.status_code, message(again)) == (400, "key already exists")
    info = json.loads(call("GET", "/v1/key/describe/my-key").data)
    assert info["name"] == "my-key"
    assert info["algorithm"] == "AES256"
    assert info["created_by"] == ADMIN
    assert info["created_at"].endswith("Z")
    listing = json.loads(call("GET", "/v1/key/list/my*").data)
    assert listing == {"names": ["my-key"]}
    assert call("DELETE", "/v1/key/delete/my-key").status_code == 200
    gone = call("DELETE", "/v1/key/delete/my-key")
    assert (gone.status_code, message(gone)) == (404, "key does not exist")


def test_empty_success_responses_have_no_content_type(call):
    response = call("POST", "/v1/key/create/k")
    assert response.status_code == 200
    assert "Content-Type" not in response.headers
    assert response.headers["Content-Length"] == "0"


@pytest.mark.parametrize("name", ["", "my.key", "a" * 81, "_", "-a", "a-", "k%20x", "k*"])
def test_invalid_key_names_are_400(call, name):
    response = call("POST", f"/v1/key/create/{name}")
    assert response.status_code == 400
    decoded = name.replace("%20", " ")
    assert (
        message(response)
        == f"key name '{decoded}' is empty, too long or contains invalid characters"
    )


def test_nested_resource_is_an_invalid_name(call):
    response = call("GET", "/v1/key/describe/a/b")
    assert message(response) == "key name 'a/b' is empty, too long or contains invalid characters"


@pytest.mark.parametrize("pattern", ["*-*", "my.key", "-*"])
def test_invalid_list_patterns(call, pattern):
    response = call("GET", f"/v1/key/list/{pattern}")
    assert response.status_code == 400
    assert message(response) == f"listing pattern '{pattern}' is empty, too long or is invalid"


def test_list_star_and_prefix(call):
    for name in ("b-key", "a-key", "a-other"):
        call("POST", f"/v1/key/create/{name}")
    assert json.loads(call("GET", "/v1/key/list/*").data)["names"] == ["a-key", "a-other", "b-key"]
    assert json.loads(call("GET", "/v1/key/list/a-*").data)["names"] == ["a-key", "a-other"]
    assert json.loads(call("GET", "/v1/key/list/").data)["names"] == ["a-key", "a-other", "b-key"]


def test_generate_decrypt_round_trip_with_context(call):
    call("POST", "/v1/key/create/k")
    context = b'{"bucket":"bucket/object"}'
    reply = json.loads(call("POST", "/v1/key/generate/k", body={"context": b64(context)}).data)
    plaintext = base64.b64decode(reply["plaintext"])
    ciphertext = base64.b64decode(reply["ciphertext"])
    assert len(plaintext) == 32 and len(ciphertext) == 76
    opened = call(
        "POST",
        "/v1/key/decrypt/k",
        body={"ciphertext": reply["ciphertext"], "context": b64(context)},
    )
    assert base64.b64decode(json.loads(opened.data)["plaintext"]) == plaintext
    wrong = call(
        "POST", "/v1/key/decrypt/k", body={"ciphertext": reply["ciphertext"], "context": b64(b"x")}
    )
    assert (wrong.status_code, message(wrong)) == (
        400,
        "decryption failed: ciphertext is not authentic",
    )


def test_generate_accepts_empty_and_null_bodies(call):
    call("POST", "/v1/key/create/k")
    for raw in (b"", b"{}", b"null", b'{"context":null}', b'{"Context":""}'):
        response = call("POST", "/v1/key/generate/k", raw=raw)
        assert response.status_code == 200, raw


def test_encrypt_decrypt_and_case_insensitive_fields(call):
    call("POST", "/v1/key/create/k")
    sealed = json.loads(call("POST", "/v1/key/encrypt/k", body={"Plaintext": b64(b"hello")}).data)
    assert len(base64.b64decode(sealed["ciphertext"])) == 5 + 44
    opened = json.loads(
        call("POST", "/v1/key/decrypt/k", body={"ciphertext": sealed["ciphertext"]}).data
    )
    assert base64.b64decode(opened["plaintext"]) == b"hello"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[1]",
        b'"text"',
        b"{",
        b'{"plaintext": 5}',
        b'{"plaintext": "not base64!"}',
        b'{"plaintext": "aGVsbG8"}',  # missing padding
        b'{"plaintext": "aGVs-G8="}',  # URL-safe alphabet
        b'{"plaintext": "aGVsbG8=", "version": 1}',
        b"\xff\xfe",
    ],
)
def test_malformed_encrypt_bodies_are_400_invalid_request_body(call, raw):
    call("POST", "/v1/key/create/k")
    response = call("POST", "/v1/key/encrypt/k", raw=raw)
    assert (response.status_code, message(response)) == (400, "invalid request body")


def test_trailing_bytes_after_the_json_value_are_ignored_like_go(call):
    call("POST", "/v1/key/create/k")
    assert (
        call("POST", "/v1/key/encrypt/k", raw=b'{"plaintext":"aGk="} trailing').status_code == 200
    )


def test_body_limit_is_400_not_413(call):
    call("POST", "/v1/key/create/k")
    big = b'{"plaintext":"' + b"A" * 1_000_000 + b'"}'
    response = call("POST", "/v1/key/encrypt/k", raw=big)
    assert (response.status_code, message(response)) == (400, "invalid request body")


def test_missing_key_is_404_after_body_validation(call):
    response = call("POST", "/v1/key/decrypt/nope", raw=b"{")
    assert response.status_code == 400
    response = call("POST", "/v1/key/decrypt/nope", body={"ciphertext": b64(b"x" * 40)})
    assert (response.status_code, message(response)) == (404, "key does not exist")


def test_import_rules(call):
    ok = call("POST", "/v1/key/import/imp", body={"key": b64(bytes(32)), "cipher": "AES256"})
    assert ok.status_code == 200
    again = call("POST", "/v1/key/import/imp", body={"key": b64(bytes(32)), "cipher": "AES256"})
    assert (again.status_code, message(again)) == (400, "key already exists")
    cases = [
        ({"key": b64(bytes(32)), "cipher": "%!2"}, 406, "algorithm '%!2' is not supported"),
        ({"key": b64(bytes(32))}, 406, "algorithm '' is not supported"),
        ({"key": b64(bytes(16)), "cipher": "AES256"}, 406, "invalid key size for 'AES256'"),
        ({"key": b64(bytes(24)), "cipher": "ChaCha20"}, 406, "invalid key size for 'ChaCha20'"),
        ({"key": 7, "cipher": "AES256"}, 400, "invalid import key request body"),
    ]
    for body, status, text in cases:
        response = call("POST", "/v1/key/import/other", body=body)
        assert (response.status_code, message(response)) == (status, text)


def test_imported_chacha20_key_works(call):
    call(
        "POST",
        "/v1/key/import/cc",
        body={"key": b64(bytes(range(32))), "cipher": "XCHACHA20-POLY1305"},
    )
    info = json.loads(call("GET", "/v1/key/describe/cc").data)
    assert info["algorithm"] == "ChaCha20"
    sealed = json.loads(call("POST", "/v1/key/encrypt/cc", body={"plaintext": b64(b"x")}).data)
    local = SecretKey(bytes(range(32)), Algorithm.CHACHA20)
    assert local.decrypt(base64.b64decode(sealed["ciphertext"])) == b"x"


def test_hmac_is_deterministic_and_needs_no_content_type(call):
    call("POST", "/v1/key/create/h")
    first = call("PUT", "/v1/key/hmac/h", body={"message": b64(b"root access key")})
    second = call("PUT", "/v1/key/hmac/h", body={"message": b64(b"root access key")})
    assert first.status_code == 200
    assert "Content-Type" not in first.request.headers
    assert json.loads(first.data) == json.loads(second.data)
    assert len(base64.b64decode(json.loads(first.data)["hmac"])) == 32


def test_hmac_of_a_legacy_key_is_409(call, app_and_store):
    _, store = app_and_store
    store.create("legacy", b'{"bytes":"' + b64(bytes(32)).encode() + b'"}')
    response = call("PUT", "/v1/key/hmac/legacy", body={"message": b64(b"m")})
    assert (response.status_code, message(response)) == (409, "key does not support HMAC")


def test_unparsable_stored_key_is_502(call, app_and_store):
    _, store = app_and_store
    store.create("broken", b"not a key")
    response = call("GET", "/v1/key/describe/broken")
    assert (response.status_code, message(response)) == (502, "failed to read key")


def test_go_format_key_is_served(call, app_and_store):
    _, store = app_and_store
    version = KeyVersion.generate(created_by="someone")
    store.create("go-key", version.encode())
    info = json.loads(call("GET", "/v1/key/describe/go-key").data)
    assert info["created_by"] == "someone"


# --- policy and identity views -------------------------------------------------------------


def test_policy_views(call):
    assert json.loads(call("GET", "/v1/policy/list/*").data) == {
        "names": ["my-app", "reader"],
        "continue_at": "",
    }
    read = json.loads(call("GET", "/v1/policy/read/my-app").data)
    assert read["allow"]["/v1/status"] == {}
    assert read["deny"] == {"/v1/key/generate/my-app-internal*": {}}
    assert read["created_by"] == ADMIN
    described = json.loads(call("GET", "/v1/policy/describe/reader").data)
    assert set(described) == {"name", "created_at", "created_by"}
    missing = call("GET", "/v1/policy/read/nope")
    assert (missing.status_code, message(missing)) == (404, "policy does not exist")
    bad = call("GET", "/v1/policy/describe/a.b")
    assert message(bad) == "policy name 'a.b' is empty, too long or contains invalid characters"


def test_identity_views(call):
    listing = json.loads(call("GET", "/v1/identity/list/*").data)
    assert listing == {"identities": sorted([ADMIN, APP, READER]), "continue_at": ""}
    assert json.loads(call("GET", f"/v1/identity/describe/{ADMIN}").data)["admin"] is True
    app_info = json.loads(call("GET", f"/v1/identity/describe/{APP}").data)
    assert app_info["policy"] == "my-app" and app_info["created_by"] == ADMIN
    missing = call("GET", f"/v1/identity/describe/{STRANGER}")
    assert (missing.status_code, message(missing)) == (404, "identity does not exist")


def test_self_describe_for_admin_policy_holder_and_stranger(call):
    admin = json.loads(call("GET", "/v1/identity/self/describe").data)
    assert admin["identity"] == ADMIN and admin["admin"] is True
    app = json.loads(call("GET", "/v1/identity/self/describe", identity=APP).data)
    assert app["policy"] == "my-app"
    assert "/v1/key/list/*" in app["allow"]
    stranger = call("GET", "/v1/identity/self/describe", identity=STRANGER)
    assert (stranger.status_code, message(stranger)) == (404, "identity does not exist")
    nocert = call("GET", "/v1/identity/self/describe", identity=None)
    assert nocert.status_code == 404


# --- system --------------------------------------------------------------------------------


def test_status_and_ready(call):
    status = json.loads(call("GET", "/v1/status").data)
    assert status["keystore_latency"] >= 1
    assert status["os"] == "linux"
    assert "keystore_unreachable" not in status
    assert call("GET", "/v1/ready").status_code == 200


def test_api_lists_all_22_routes(call):
    routes = json.loads(call("GET", "/v1/api").data)
    assert len(routes) == 22
    by_path = {r["path"]: r for r in routes}
    assert by_path["/v1/key/generate/"] == {
        "method": "PUT",
        "path": "/v1/key/generate/",
        "max_body": 1000000,
        "timeout": 15,
    }
    assert by_path["/version"]["timeout"] == 10
    assert by_path["/v1/log/audit"]["timeout"] == 0


def test_metrics_count_only_handled_requests(call):
    call("POST", "/v1/key/create/m")
    call("GET", "/v1/key/describe/none")
    call("GET", "/v1/status", identity=STRANGER)  # 403: not counted
    text = call("GET", "/v1/metrics").data.decode()
    assert 'kes_http_request_success{code="200"} 1' in text
    assert 'kes_http_request_error{code="404"} 1' in text
    assert "_total" not in text and "_created" not in text
    assert "# TYPE kes_http_response_time histogram" in text


# --- bounded parsing, framework answers, keystore failures (issue #10) ----------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"plaintext": ' + b"1" * 5000 + b"}", "a number is longer than 64 characters"),
        (b'{"x": -' + b"9" * 100 + b', "plaintext": "aGk="}', "a number is longer"),
        (b'{"x": 1.' + b"0" * 100 + b"}", "a number is longer"),
        (b'{"x": ' + b"[" * 200_000 + b"}", "JSON is nested too deeply"),
        (b'{"x": ' + b'{"a":' * 5_000 + b"}", "JSON is nested too deeply"),
    ],
)
def test_decoding_limits_are_400_with_the_reason(call, raw, reason):
    call("POST", "/v1/key/create/k")
    for route in ("encrypt", "decrypt", "generate", "hmac"):
        response = call("POST", f"/v1/key/{route}/k", raw=raw)
        assert response.status_code == 400, route
        assert message(response).startswith("invalid request body: " + reason), route
    response = call("POST", "/v1/key/import/k2", raw=raw)
    assert message(response).startswith("invalid import key request body: " + reason)


def test_small_numbers_and_nesting_in_ignored_fields_are_accepted_like_go(call):
    call("POST", "/v1/key/create/k")
    raw = b'{"plaintext":"aGk=","n":12345678901234567890,"f":-1.5e10,"deep":[[[{"a":[1]}]]]}'
    assert call("POST", "/v1/key/encrypt/k", raw=raw).status_code == 200


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_invalid(call, constant):
    call("POST", "/v1/key/create/k")
    response = call("POST", "/v1/key/encrypt/k", raw=b'{"plaintext":"aGk=","x":' + constant + b"}")
    assert (response.status_code, message(response)) == (400, "invalid request body")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_redirects_are_json_for_every_method(call, method):
    response = call(method, "/v1/key/create/../create/k?x=1")
    assert response.status_code == 301
    assert response.headers["Location"] == "/v1/key/create/k?x=1"
    assert message(response) == "moved permanently to '/v1/key/create/k?x=1'"
    assert b"<" not in response.data


class FailingStore(MemoryKeystore):
    """A backend that leaks raw ``OSError``s, like a disk that is full or gone."""

    def __init__(self) -> None:
        super().__init__()
        self.error: OSError | None = None

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def create(self, name, value):
        self._check()
        super().create(name, value)

    def get(self, name):
        self._check()
        return super().get(name)

    def delete(self, name):
        self._check()
        super().delete(name)

    def list(self, prefix, limit=-1):
        self._check()
        return super().list(prefix, limit)

    def status(self):
        self._check()
        return super().status()


def test_every_keystore_io_error_is_the_routes_502_and_is_logged_with_the_request(kes_log):
    import errno

    config = make_app()[0].extensions["kes_flask"].config
    store = FailingStore()
    app = create_app(config, keystore=store, identify=identify, start_background_tasks=False)
    client = app.test_client()
    env = {"kes.test.identity": ADMIN}
    assert client.put("/v1/key/create/k", environ_base=env).status_code == 200
    store.error = OSError(errno.ENOSPC, "No space left on device")
    app.extensions["kes_flask"].keys.expire_all()
    expected = {
        ("PUT", "/v1/key/create/k2"): "failed to create key",
        ("PUT", "/v1/key/import/k3"): "failed to create key",
        ("GET", "/v1/key/describe/k"): "failed to read key",
        ("PUT", "/v1/key/generate/k"): "failed to read key",
        ("DELETE", "/v1/key/delete/k"): "failed to delete key",
        ("GET", "/v1/key/list/*"): "failed to list keys",
    }
    body = json.dumps({"key": b64(b"k" * 32), "cipher": "AES256"})
    for (method, path), text in expected.items():
        kes_log.clear()
        data = body if "import" in path else None
        response = client.open(path, method=method, data=data, environ_base=env)
        assert (response.status_code, message(response)) == (502, text), path
        (record,) = [r for r in kes_log if r.levelname == "ERROR"]
        assert record.attrs["req.path"] == path and record.attrs["req.identity"] == ADMIN
        assert "No space left on device" in record.getMessage()
    assert client.get("/v1/ready", environ_base=env).status_code == 502
    assert json.loads(client.get("/v1/status", environ_base=env).data)["keystore_unreachable"]
    store.error = None  # the disk has room again: no restart needed
    assert client.get("/v1/ready", environ_base=env).status_code == 200
    assert client.put("/v1/key/create/k2", environ_base=env).status_code == 200
