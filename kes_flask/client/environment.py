"""Endpoints and credentials from the environment, as the ``kes`` CLI reads them (cli.md §1.6).

For each setting the first variable that is *present* wins, even when it is empty. After the
upstream names come MinIO's own file variables and the KES v0.5 to v0.8 ``KES_CLIENT_TLS_*_FILE``
names, which upstream no longer reads (Decision C4: a harmless superset).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kes_flask.auth import certs
from kes_flask.auth.identity import APIKey
from kes_flask.client.errors import KesError
from kes_flask.client.transport import split_endpoints

DEFAULT_ENDPOINT = "127.0.0.1:7373"
SERVER_VARIABLES = ("MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT")
API_KEY_VARIABLES = ("MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY")
KEY_FILE_VARIABLES = (
    "MINIO_KES_KEY_FILE",
    "KES_CLIENT_KEY",
    "MINIO_KES_CLIENT_KEY",
    "MINIO_KMS_KES_KEY_FILE",
    "KES_CLIENT_TLS_KEY_FILE",
)
CERT_FILE_VARIABLES = (
    "MINIO_KES_CERT_FILE",
    "KES_CLIENT_CERT",
    "MINIO_KES_CLIENT_CERT",
    "MINIO_KMS_KES_CERT_FILE",
    "KES_CLIENT_TLS_CERT_FILE",
)


class SettingsError(KesError):
    """A missing or conflicting setting; the text says what to set."""


def lookup(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The value of the first of ``names`` present in ``env`` (an empty value counts)."""
    return next((env[name] for name in names if name in env), None)


@dataclass(frozen=True)
class Settings:
    endpoints: list[str]
    api_key: APIKey | None
    credentials_pem: bytes  # client private key + certificate


def _os_reason(err: OSError, path: str) -> str:
    reason = err.strerror or str(err)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise SettingsError(f"reading {what} file: {_os_reason(err, path)}") from None


def _certificate_credentials(
    cert_file: str, key_file: str, password: Callable[[], str] | None
) -> bytes:
    cert_pem = _read(cert_file, "certificate")
    try:
        chain = certs.load_certificate_chain_pem(cert_pem)
    except certs.PemError as err:
        raise SettingsError(f"reading certificate file: https: {err}") from None
    except ValueError as err:
        raise SettingsError(f"reading certificate file: x509: {err}") from None
    key_pem = _read(key_file, "private key")
    block = next(
        (b for b in certs.pem_blocks(key_pem) if b.type.endswith("PRIVATE KEY")),
        None,
    )
    if block is None:
        raise SettingsError("failed to read TLS private key: no PEM-encoded private key found")
    secret: bytes | None = None
    if "DEK-Info" in block.headers or block.type == "ENCRYPTED PRIVATE KEY":
        if password is None:
            raise SettingsError("reading password: the private key is encrypted")
        try:
            secret = password().encode()
        except (OSError, EOFError) as err:
            raise SettingsError(f"reading password: {err}") from None
    try:
        key = certs.load_private_key_pem(key_pem, secret)
    except ValueError as err:
        if str(err) == "incorrect password":
            raise SettingsError("incorrect password") from None
        raise SettingsError(f"failed to decrypt private key: {err}") from None
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise SettingsError("tls: private key does not match public key")
    return certs.private_key_pem(key) + cert_pem


def from_environment(
    env: Mapping[str, str] | None = None,
    *,
    server: str | None = None,
    api_key: str | None = None,
    password: Callable[[], str] | None = None,
) -> Settings:
    """Resolve endpoints and credentials; ``server``/``api_key`` are command-line overrides.

    ``password`` is asked for an encrypted private key file. Errors carry the CLI's texts.
    """
    env = os.environ if env is None else env
    endpoint_text = server if server is not None else lookup(SERVER_VARIABLES, env)
    if endpoint_text is None:
        endpoint_text = DEFAULT_ENDPOINT
    try:
        endpoints = split_endpoints(endpoint_text)
    except ValueError as err:
        raise SettingsError(f"{err}. Set MINIO_KES_SERVER or KES_SERVER to host:port") from None
    key_text = api_key if api_key is not None else lookup(API_KEY_VARIABLES, env) or ""
    key_file = lookup(KEY_FILE_VARIABLES, env) or ""
    cert_file = lookup(CERT_FILE_VARIABLES, env) or ""
    if not key_text and not key_file and not cert_file:
        raise SettingsError("no API key specified. Consider setting MINIO_KES_API_KEY")
    if key_text and key_file:
        raise SettingsError("API key and private key file cannot be used at the same time")
    if key_text and cert_file:
        raise SettingsError("API key and certificate file cannot be used at the same time")
    if key_file and not cert_file:
        raise SettingsError("no certificate file specified. Consider setting MINIO_KES_CERT_FILE")
    if cert_file and not key_file:
        raise SettingsError("no private key file specified. Consider setting MINIO_KES_KEY_FILE")
    if key_text:
        try:
            key = APIKey.parse(key_text)
        except ValueError as err:
            raise SettingsError(f"parsing API key: {err}") from None
        pem = certs.private_key_pem(key.private_key) + certs.certificate_pem(
            certs.client_certificate_for_api_key(key)
        )
        return Settings(endpoints, key, pem)
    return Settings(endpoints, None, _certificate_credentials(cert_file, key_file, password))
