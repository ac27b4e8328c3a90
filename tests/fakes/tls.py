"""A throwaway CA and a 127.0.0.1/localhost server certificate for the fakes' HTTPS listeners."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from kes_flask.auth.certs import private_key_pem
from tests.certificates import make_certificate


@dataclass(frozen=True)
class ServerTLS:
    ca: str  # PEM file the clients trust (AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE)
    cert: str
    key: str

    @classmethod
    def create(cls, directory: Path) -> ServerTLS:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = make_certificate("kes-flask test CA", ca=True, days=2)
        key, cert = make_certificate(
            "localhost", issuer=(ca_cert, ca_key), ips=["127.0.0.1"], dns=["localhost"], days=2
        )
        paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
        paths[0].write_bytes(ca_cert.public_bytes(Encoding.PEM))
        paths[1].write_bytes(cert.public_bytes(Encoding.PEM))
        paths[2].write_bytes(private_key_pem(key))
        paths[2].chmod(0o600)
        return cls(*(str(p) for p in paths))
