"""``--dev``: a throwaway server with a self-signed certificate and a fresh admin API key.

Keys live in a temporary directory (not in memory) so every gunicorn worker sees the same
keys; the master removes the directory when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from kes_flask.auth.certs import (
    certificate_pem,
    client_certificate_for_api_key,
    private_key_pem,
    self_signed_server_certificate,
)
from kes_flask.auth.identity import APIKey
from kes_flask.config.model import FSKeystoreConfig, ServerConfig, TLSConfig

DEV_ADDRESS = "127.0.0.1:7373"


@dataclass
class DevEnvironment:
    config: ServerConfig
    api_key: APIKey
    directory: str

    @property
    def server_cert(self) -> str:
        return os.path.join(self.directory, "server.crt")

    def client_files(self) -> tuple[str, str]:
        """The admin's certificate and key, for clients that need files (curl)."""
        return os.path.join(self.directory, "client.crt"), os.path.join(
            self.directory, "client.key"
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def create_dev_environment(host: str) -> DevEnvironment:
    directory = tempfile.mkdtemp(prefix="kes-flask-dev-")
    ips = ["127.0.0.1", "::1"]
    if host and host not in ips and host not in ("0.0.0.0", "::"):  # noqa: S104
        ips.append(host)
    key, cert = self_signed_server_certificate(ips=ips, dns=["localhost"])
    key_path = os.path.join(directory, "server.key")
    cert_path = os.path.join(directory, "server.crt")
    _write(key_path, private_key_pem(key), 0o600)
    _write(cert_path, certificate_pem(cert), 0o644)
    api_key = APIKey.generate()
    _write(os.path.join(directory, "client.key"), private_key_pem(api_key.private_key), 0o600)
    client_cert = client_certificate_for_api_key(api_key)
    _write(os.path.join(directory, "client.crt"), certificate_pem(client_cert), 0o644)
    config = ServerConfig(
        admin_identity=api_key.identity,
        tls=TLSConfig(key=key_path, cert=cert_path),
        keystore=FSKeystoreConfig(path=os.path.join(directory, "keys")),
    )
    return DevEnvironment(config, api_key, directory)


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
