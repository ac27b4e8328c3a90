"""The server TLS context on real sockets (no gunicorn): unverified client certificates,
identities, handshake timeouts and certificate reloading."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from kes_flask.auth.certs import (
    certificate_pem,
    client_certificate_for_api_key,
    identity_certificate,
    private_key_pem,
)
from kes_flask.auth.identity import APIKey
from kes_flask.auth.peer import ANONYMOUS_PEER
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import TLSConfig
from kes_flask.server.tls import TLSContextProvider, build_server_context, peer_of_certificate
from tests.certificates import make_certificate
from tests.kes_server import eventually


@pytest.fixture
def server_files(tmp_path: Path) -> TLSConfig:
    key = APIKey.generate()
    cert = identity_certificate(
        key, "localhost", ["127.0.0.1"], ["localhost"], datetime.timedelta(days=1)
    )
    (tmp_path / "server.key").write_bytes(private_key_pem(key.private_key))
    (tmp_path / "server.crt").write_bytes(certificate_pem(cert))
    return TLSConfig(key=str(tmp_path / "server.key"), cert=str(tmp_path / "server.crt"))


def client_context(tmp_path: Path, tls: TLSConfig, key: APIKey | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls.cert)
    if key is not None:
        path = tmp_path / f"client-{key.identity[:8]}.pem"
        path.write_bytes(
            private_key_pem(key.private_key) + certificate_pem(client_certificate_for_api_key(key))
        )
        context.load_cert_chain(str(path))
    return context


def serve_once(context: ssl.SSLContext, results: list) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept() -> None:
        conn, _ = listener.accept()
        try:
            tls = context.wrap_socket(conn, server_side=True)
            results.append(tls.kes_peer())
            tls.sendall(b"ok")
            tls.close()
        except Exception as err:
            results.append(err)
        finally:
            listener.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def handshake(port: int, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            return tls.recv(2)


def test_api_key_certificate_identifies_the_client(tmp_path: Path, server_files: TLSConfig):
    key = APIKey.generate()
    results: list = []
    port = serve_once(
        build_server_context(server_files, optional_client_certificate=False), results
    )
    assert handshake(port, client_context(tmp_path, server_files, key)) == b"ok"
    (peer,) = eventually(lambda: results)
    assert peer.identity == key.identity and peer.error is None


def test_missing_certificate_fails_the_handshake_when_required(
    tmp_path: Path, server_files: TLSConfig
):
    results: list = []
    port = serve_once(
        build_server_context(server_files, optional_client_certificate=False), results
    )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(port, client_context(tmp_path, server_files, None))
    assert isinstance(eventually(lambda: results)[0], ssl.SSLError)


def test_missing_certificate_is_anonymous_when_optional(tmp_path: Path, server_files: TLSConfig):
    results: list = []
    port = serve_once(build_server_context(server_files, optional_client_certificate=True), results)
    assert handshake(port, client_context(tmp_path, server_files, None)) == b"ok"
    assert eventually(lambda: results) == [ANONYMOUS_PEER]


def test_handshake_timeout_frees_the_thread(server_files: TLSConfig):
    context = build_server_context(server_files, optional_client_certificate=False)
    context.handshake_timeout = 0.3
    results: list = []
    port = serve_once(context, results)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"\x16\x03\x01\x02\x00")  # a record header, then nothing
        (error,) = eventually(lambda: results)  # the client stays connected until then
    assert time.monotonic() - started >= context.handshake_timeout
    assert isinstance(error, ssl.SSLEOFError)


def test_ca_certificates_never_identify_a_client():
    _, ca = make_certificate("ca", ca=True)
    assert peer_of_certificate(ca.public_bytes(Encoding.DER)) == ANONYMOUS_PEER
    assert peer_of_certificate(None) == ANONYMOUS_PEER
    assert peer_of_certificate(b"\x30\x03garbage") == ANONYMOUS_PEER


def test_configuration_errors_name_the_problem(tmp_path: Path, server_files: TLSConfig):
    with pytest.raises(ConfigError, match="failed to read TLS certificate"):
        build_server_context(
            TLSConfig(key=server_files.key, cert=str(tmp_path / "nope.crt")), False
        )
    encrypted = tmp_path / "encrypted.key"
    key = APIKey.generate()
    encrypted.write_bytes(private_key_pem(key.private_key, b"pw"))
    with pytest.raises(ConfigError, match="private key is encrypted: password required"):
        build_server_context(TLSConfig(key=str(encrypted), cert=server_files.cert), False)
    with pytest.raises(ConfigError, match="failed to load TLS certificate and private key"):
        build_server_context(
            TLSConfig(key=str(encrypted), cert=server_files.cert, password="wrong"), False
        )


def test_provider_reloads_changed_files_and_keeps_the_old_context_on_error(server_files: TLSConfig):
    now = [0.0]
    provider = TLSContextProvider(server_files, False, reload_interval=60, clock=lambda: now[0])
    first = provider()
    now[0] = 61
    assert provider() is first  # files unchanged
    Path(server_files.cert).write_bytes(b"not a certificate")
    os.utime(server_files.cert, (time.time() + 5, time.time() + 5))
    now[0] = 200
    assert provider() is first  # broken new files: keep serving the old certificate
    key = APIKey.generate()
    cert = identity_certificate(key, "localhost", ["127.0.0.1"], [], datetime.timedelta(days=1))
    Path(server_files.key).write_bytes(private_key_pem(key.private_key))
    Path(server_files.cert).write_bytes(certificate_pem(cert))
    now[0] = 300
    assert provider() is not first
