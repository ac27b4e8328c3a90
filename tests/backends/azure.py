"""Azure Key Vault for the backend-parametrized suites: one HTTPS fake per test session.

The kes-flask processes reach the fake through the SDK's documented settings only: the
configured ``endpoint``, ``AZURE_AUTHORITY_HOST`` (Entra ID sign-in) and ``REQUESTS_CA_BUNDLE``
(the fake's CA): ``environment()`` is what the server process needs.
"""

from __future__ import annotations

import atexit

import pytest

from tests.fakes.azure_keyvault import FakeKeyVault

CLIENT_ID = "c3b7badf-cd2b-4297-bece-4de5f2e575f6"
CLIENT_SECRET = "kes-flask-azure-client-secret-do-not-log"
_fakes: list[FakeKeyVault] = []


def fake_key_vault(tmp_path_factory: pytest.TempPathFactory) -> FakeKeyVault:
    """The session's fake (started on first use, stopped when the interpreter exits)."""
    if not _fakes:
        fake = FakeKeyVault(tmp_path_factory.mktemp("azure")).start()
        fake.entra.add_app(CLIENT_ID, CLIENT_SECRET)
        atexit.register(fake.stop)
        _fakes.append(fake)
    return _fakes[0]


def environment(fake: FakeKeyVault | None = None) -> dict[str, str]:
    """What a kes-flask process needs to reach the fake: the Entra ID host and the fake's CA."""
    fake = fake or (_fakes[0] if _fakes else None)
    if fake is None:
        return {}
    return {"AZURE_AUTHORITY_HOST": fake.authority, "REQUESTS_CA_BUNDLE": fake.ca_file}


SECRETS = (CLIENT_SECRET,)  # must never appear in any output (nor the fake's issued tokens)


def keystore(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``keystore:`` section for an empty vault (the session's fake is reset)."""
    fake = fake_key_vault(tmp_path_factory)
    fake.reset()
    return f"""keystore:
  azure:
    keyvault:
      endpoint: "{fake.vault_url}"
      credentials:
        tenant_id: "{fake.tenant}"
        client_id: "{CLIENT_ID}"
        client_secret: "{CLIENT_SECRET}"
"""
