"""TLS as Go KES clients need it: unverified client certificates by default, verification with
``tls.auth: on``, optional certificates when a route skips auth, resumed sessions, handshake
timeouts and encrypted server keys."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from kes_flask.auth.certs import certificate_pem, private_key_pem
from kes_flask.auth.identity import APIKey
from kes_flask.client import KesClient
from tests.certificates import make_certificate
from tests.kes_server import PKI, KesServer, config_yaml

pytestmark = pytest.mark.e2e


def request(server: KesServer, context: ssl.SSLContext, path: str, session=None):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost", session=session) as tls:
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            status = int(data.split(b" ", 2)[1])
            body = data.partition(b"\r\n\r\n")[2]
            return status, body, tls.session, tls.session_reused


def test_skip_auth_makes_certificates_optional(start_server, tmp_path: Path, pki: PKI):
    extra = "api:\n  /v1/ready:\n    skip_auth: true\n  /v1/metrics:\n    skip_auth: true\n"
    server = start_server(config_yaml(pki, str(tmp_path / "keys"), extra=extra))
    anonymous = server.tls_context(None)
    assert request(server, anonymous, "/v1/ready")[0] == 200
    assert request(server, anonymous, "/v1/metrics")[0] == 200
    assert request(server, anonymous, "/version")[0] == 200
    status, body, _, _ = request(server, anonymous, "/v1/status")
    assert (status, json.loads(body)) == (400, {"message": "tls: client certificate is required"})
    # with a certificate, auth still applies to the other routes
    assert request(server, server.tls_context("admin"), "/v1/status")[0] == 200
    assert request(server, server.tls_context("stranger"), "/v1/status")[0] == 403


def test_tls_auth_on_verifies_client_certificates(start_server, tmp_path: Path, pki: PKI):
    ca_key, ca_cert = make_certificate("test client CA", ca=True)
    client_key, client_cert = make_certificate(
        "verified client", issuer=(ca_cert, ca_key), client_auth=True
    )
    (tmp_path / "ca.crt").write_bytes(certificate_pem(ca_cert))
    verified = pki.add_files("verified", private_key_pem(client_key), certificate_pem(client_cert))
    config = config_yaml(pki, str(tmp_path / "keys"), admin=verified.identity)
    config = config.replace("tls:\n", f"tls:\n  auth: on\n  ca: {tmp_path / 'ca.crt'}\n")
    server = start_server(config)
    assert (
        KesClient(
            server.endpoint,
            cert_file=verified.cert_file,
            key_file=verified.key_file,
            ca_file=pki.server_cert,
        ).status()["num_cpu"]
        >= 1
    )
    # API-key certificates are self-signed: they can never verify in this mode
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        request(server, server.tls_context("admin"), "/v1/status")


def test_resumed_sessions_keep_the_identity(start_server, pki: PKI):
    server = start_server(workers=1)
    context = server.tls_context("admin")
    context.maximum_version = (
        ssl.TLSVersion.TLSv1_2
    )  # session reuse is observable without tickets timing
    status, _, session, reused = request(server, context, "/v1/identity/self/describe")
    assert status == 200 and not reused
    status, body, _, reused = request(server, context, "/v1/identity/self/describe", session)
    assert reused, "the server did not resume the session"
    assert status == 200
    assert json.loads(body)["identity"] == pki["admin"].identity


def test_stalled_handshakes_do_not_block_other_clients(start_server, pki: PKI):
    server = start_server(workers=1, env={"KES_FLASK_THREADS": "2"})
    stalled = []
    for _ in range(3):  # more stalled clients than threads
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")  # a ClientHello header, then silence
        stalled.append(sock)
    try:
        client = server.client("admin", timeout=30)
        started = time.monotonic()
        assert client.status()["num_cpu"] >= 1
        assert time.monotonic() - started < 25
    finally:
        for sock in stalled:
            sock.close()


def test_encrypted_server_key_with_password(start_server, tmp_path: Path, pki: PKI):
    key = APIKey.generate()
    from kes_flask.auth.certs import identity_certificate

    cert = identity_certificate(
        key, "localhost", ["127.0.0.1"], ["localhost"], datetime.timedelta(days=1)
    )
    (tmp_path / "enc.key").write_bytes(private_key_pem(key.private_key, b"s3cret"))
    (tmp_path / "enc.crt").write_bytes(certificate_pem(cert))
    config = config_yaml(pki, str(tmp_path / "keys"))
    config = config.replace(pki.server_key, str(tmp_path / "enc.key")).replace(
        pki.server_cert, str(tmp_path / "enc.crt")
    )
    config = config.replace("tls:\n", "tls:\n  password: ${SERVER_KEY_PASSWORD}\n")
    server = start_server(config, env={"SERVER_KEY_PASSWORD": "s3cret"})
    client = KesClient(
        server.endpoint, api_key=pki["admin"].api_key, ca_file=str(tmp_path / "enc.crt")
    )
    assert client.status()["num_cpu"] >= 1


def test_concurrent_clients_on_many_connections(start_server, pki: PKI):
    server = start_server()
    admin = server.client("admin")
    admin.create_key("busy")
    errors: list[BaseException] = []

    def work() -> None:
        client = server.client("admin")
        try:
            for _ in range(20):
                dek = client.generate_key("busy", b"c")
                assert client.decrypt("busy", dek.ciphertext, b"c") == dek.plaintext
        except BaseException as err:  # collected and re-raised in the test thread
            errors.append(err)
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
