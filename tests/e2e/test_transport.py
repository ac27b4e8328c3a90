"""HTTP framing as MinIO's Go client produces it, keep-alive, and malformed input.

Raw bytes over real TLS to a 2-worker gunicorn: chunked bodies without Content-Length, with and
without Content-Type, the exact startup request MinIO sends (spec/minio.md §2.2), and a corpus
of broken requests that must never produce a 5xx or a traceback.
"""

from __future__ import annotations

import json
import random
import socket
import ssl

import pytest

from tests.kes_server import PKI, KesServer, config_yaml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: PKI):
    workdir = tmp_path_factory.mktemp("transport")
    policy = f"""
policy:
  minio:
    allow:
      - /v1/key/create/minio-*
      - /v1/key/generate/minio-*
      - /v1/key/decrypt/minio-*
      - /v1/key/hmac/minio-*
      - /v1/key/list/*
    identities:
      - {pki["app"].identity}
"""
    kes = KesServer(workdir, pki, config_yaml(pki, str(workdir / "keys"), extra=policy))
    kes.start()
    yield kes
    kes.stop()


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def go_request(method: str, path: str, body: bytes | None, content_type: bool = True) -> bytes:
    """Bytes as Go's net/http writes them for kms-go (minio.md §2.2)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:7373\r\nUser-Agent: Go-http-client/1.1\r\n"
    if body is None:
        return (head + "Content-Length: 0\r\nAccept-Encoding: gzip\r\n\r\n").encode()
    head += "Transfer-Encoding: chunked\r\n"
    if content_type:
        head += "Content-Type: application/json\r\n"
    return (head + "Accept-Encoding: gzip\r\n\r\n").encode() + chunked(body)


def test_minio_startup_sequence_with_exact_bytes(server: KesServer):
    generate = go_request("POST", "/v1/key/generate/minio-default-key", b'{"context":"e30="}')
    status, headers, body = parse(server.raw(generate, "app"))
    assert (status, json.loads(body)) == (404, {"message": "key does not exist"})
    assert headers["content-type"] == "application/json"

    create = go_request("POST", "/v1/key/create/minio-default-key", None)
    status, headers, body = parse(server.raw(create, "app"))
    assert (status, body, headers["content-length"]) == (200, b"", "0")
    assert "content-type" not in headers

    status, _, body = parse(server.raw(create, "app"))
    assert (status, json.loads(body)) == (400, {"message": "key already exists"})

    status, _, body = parse(server.raw(generate, "app"))
    dek = json.loads(body)
    assert status == 200 and len(dek["plaintext"]) == 44 and len(dek["ciphertext"]) == 104

    decrypt_body = json.dumps({"ciphertext": dek["ciphertext"], "context": "e30="}).encode()
    status, _, body = parse(
        server.raw(go_request("POST", "/v1/key/decrypt/minio-default-key", decrypt_body), "app")
    )
    assert (status, json.loads(body)) == (200, {"plaintext": dek["plaintext"]})


def test_hmac_without_content_type_chunked(server: KesServer):
    server.raw(go_request("POST", "/v1/key/create/minio-hmac", None), "app")
    request = go_request(
        "PUT", "/v1/key/hmac/minio-hmac", b'{"message":"cm9vdCBhY2Nlc3Mga2V5"}', content_type=False
    )
    first = parse(server.raw(request, "app"))
    second = parse(server.raw(request, "app"))
    assert first[0] == 200
    assert json.loads(first[2]) == json.loads(second[2])


def test_content_length_bodies_work_too(server: KesServer):
    server.raw(go_request("POST", "/v1/key/create/minio-cl", None), "app")
    body = b'{"context":"e30="}'
    request = (
        b"POST /v1/key/generate/minio-cl HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    assert parse(server.raw(request, "app"))[0] == 200


def test_alpn_selects_http11_and_tls12_is_the_minimum(server: KesServer):
    context = server.tls_context("app")
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
    old = server.tls_context("app")
    with pytest.warns(DeprecationWarning):
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(plain, server_hostname="localhost")


def test_keep_alive_survives_an_oversized_body(server: KesServer):
    server.raw(go_request("POST", "/v1/key/create/minio-ka", None), "app")
    context = server.tls_context("app")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            big = b'{"context":"' + b"A" * 1_100_000 + b'"}'
            tls.sendall(go_request("POST", "/v1/key/generate/minio-ka", big))
            first = read_response(tls)
            assert parse(first)[0] == 400
            assert json.loads(parse(first)[2]) == {"message": "invalid request body"}
            tls.sendall(go_request("POST", "/v1/key/generate/minio-ka", b'{"context":"e30="}'))
            assert parse(read_response(tls))[0] == 200


def read_response(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        None,
    )
    assert length is not None
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_client_without_certificate_fails_the_handshake(server: KesServer):
    context = server.tls_context(None)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with context.wrap_socket(plain, server_hostname="localhost") as tls:
                tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed")


GEN = b"POST /v1/key/generate/minio-x HTTP/1.1\r\nHost: x\r\n"
MALFORMED = [
    b"GET /v1/status HTTP/1.1\r\n\r\n",
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"G@T /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/key/describe/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/key/describe/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/key/describe/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/key/list/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil/v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10000 + b"\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: y\r\n" % i for i in range(200))
    + b"\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\n folded: y\r\n\r\n",
    GEN + b"Transfer-Encoding: gzip\r\n\r\n",
    GEN + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    GEN + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}\r\n",
    GEN + b"Content-Length: -1\r\n\r\n",
    GEN + b"Content-Length: abc\r\n\r\n",
    GEN + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
    GEN + b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /v1/key/decrypt/minio-x HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n{}",
    b"FOO /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"TRACE /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET //v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_never_5xx_or_traceback(server: KesServer, request_bytes: bytes):
    raw = server.raw(request_bytes, "app", timeout=8)
    if raw:  # some inputs make the server close the connection without an answer
        status, headers, body = parse(raw)
        assert status < 500, raw[:300]
        assert b"Traceback" not in raw
        if status >= 400:  # every error, whoever detects it, has the KES shape
            assert headers["content-type"] == "application/json", raw[:300]
            assert json.loads(body)["message"]


def test_random_bodies_to_every_route_never_5xx(server: KesServer):
    rng = random.Random(4711)
    routes = [
        "/v1/key/create/minio-f",
        "/v1/key/import/minio-f",
        "/v1/key/generate/minio-f",
        "/v1/key/encrypt/minio-f",
        "/v1/key/decrypt/minio-f",
        "/v1/key/hmac/minio-f",
    ]
    server.raw(go_request("POST", "/v1/key/create/minio-f", None), "app")
    client = server.client("admin")
    bodies = [
        b"",
        b"{}",
        b"null",
        b"[]",
        b'{"ciphertext":"' + b"A" * 120 + b'"}',
        b'{"key":"AAAA","cipher":1}',
    ]
    bodies += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(30)]
    bodies += [json.dumps({"ciphertext": "x" * n, "context": None}).encode() for n in (0, 1, 4, 99)]
    for path in routes:
        for body in bodies:
            request = go_request("POST", path, body, content_type=rng.random() < 0.5)
            status, _, payload = parse(client_raw(server, request))
            assert status < 500, (path, body, payload)
            assert b"Traceback" not in payload
    client.close()


def client_raw(server: KesServer, request: bytes) -> bytes:
    return server.raw(request, "admin")


def test_slashless_list_roots_are_served_and_authorised_as_the_root(server: KesServer):
    # kms-go builds "/v1/key/list" for an empty prefix; the policy allows "/v1/key/list/*" only
    status, _, body = parse(server.raw(go_request("GET", "/v1/key/list", None), "app"))
    assert status == 200 and "names" in json.loads(body)
    for path in ("/v1/policy/list", "/v1/identity/list"):
        status, _, body = parse(server.raw(go_request("GET", path, None), "admin"))
        assert status == 200, path
