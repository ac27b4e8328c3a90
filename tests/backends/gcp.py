"""GCP Secret Manager for the backend-parametrized suites: one HTTPS fake per test session."""

from __future__ import annotations

import atexit
import secrets
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.fakes.gcp_secretmanager import FakeSecretManager
from tests.fakes.tls import ServerTLS

PROJECT = "kes-flask-test"


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    client_id: str
    private_key_id: str
    private_key: str  # PEM

    @classmethod
    def create(cls, name: str) -> tuple[ServiceAccount, rsa.RSAPrivateKey]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        account = cls(
            client_email=f"{name}@{PROJECT}.iam.gserviceaccount.com",
            client_id="104729104729104729104",
            private_key_id=secrets.token_hex(20),
            private_key=pem,
        )
        return account, key

    def yaml_credentials(self, indent: str = "        ") -> str:
        """The four config fields, the key on one line with literal \\n as operators write it."""
        one_line = self.private_key.replace("\n", "\\n")
        return (
            f"{indent}client_email: {self.client_email}\n"
            f"{indent}client_id: '{self.client_id}'\n"
            f"{indent}private_key_id: {self.private_key_id}\n"
            f"{indent}private_key: '{one_line}'\n"
        )


_session: list[tuple[FakeSecretManager, ServiceAccount]] = []


def fake_secret_manager(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[FakeSecretManager, ServiceAccount]:
    """The session's fake and the service account it trusts (started on first use)."""
    if not _session:
        fake = FakeSecretManager(ServerTLS.create(tmp_path_factory.mktemp("gcp-tls")), PROJECT)
        account, key = ServiceAccount.create("kes-flask")
        fake.add_service_account(account.client_email, account.private_key_id, key.public_key())
        fake.start()
        atexit.register(fake.stop)
        _session.append((fake, account))
    return _session[0]


def section(endpoint: str, account: ServiceAccount) -> str:
    return f"""keystore:
  gcp:
    secretmanager:
      project_id: {PROJECT}
      endpoint: {endpoint}
      scopes:
        - https://www.googleapis.com/auth/cloud-platform
      credentials:
{account.yaml_credentials()}"""


def keystore(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``keystore:`` section for an empty project (the fake is reset)."""
    fake, account = fake_secret_manager(tmp_path_factory)
    fake.reset()
    return section(fake.endpoint, account)


def environment() -> dict[str, str]:
    """What a kes-flask process needs to trust the fake's certificate (requests' CA bundle)."""
    return {"REQUESTS_CA_BUNDLE": _session[0][0].tls.ca} if _session else {}


def secrets_of(account: ServiceAccount) -> tuple[str, ...]:
    """Strings that must never appear in any output: the key's lines, and JWTs/bearer tokens."""
    lines = [line for line in account.private_key.splitlines() if "-----" not in line]
    return (*lines, "eyJ", "Bearer ")
