"""Azure Key Vault keystore: one secret per key, as Go KES stores it (keystores.md §4).

A key is the secret ``<name>``; its value is the encoded key version, set with no content type,
no tags and no attributes. Reads take the *oldest* version, so a second writer racing a create
(Key Vault has no create-if-absent) never changes which key is served. Deletes are a soft delete
followed by a purge, so the name can be used again.

The Azure SDK (``azure-identity`` + ``azure-keyvault-secrets``, REST api-version 7.5) is an
optional extra and is imported only when this backend is configured. It does the challenge-based
bearer flow, token caching and refresh, and retries 429/503 responses honouring ``Retry-After``.
Errors name what the operator has to change (usually the missing secret permission).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from kes_flask.config.errors import ConfigError
from kes_flask.config.model import AzureKeystoreConfig
from kes_flask.keystore.base import (
    InvalidKeyNameError,
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)
from kes_flask.keystore.extras import import_sdk

API_VERSION = "7.5"
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_PURGE_ATTEMPTS_CREATE = 25  # upstream's retry counts (keystores.md §4.2)
_PUT_ATTEMPTS = 7
_PURGE_ATTEMPTS_DELETE = 10
_BEING_DELETED = "ObjectIsBeingDeleted"
_DELETED_RECOVERABLE = "ObjectIsDeletedButRecoverable"
_STATUS_TIMEOUT = 10.0
# What the SDK's HTTP pipeline does: upstream's retry budget, and bounded waits per attempt.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 7,
    "retry_status": 7,  # azure-core's default (3) would give up on throttling sooner than Go
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 0.8,
    "connection_timeout": 10,
    "read_timeout": 30,
}
_ROLE_HINT = "or, on an RBAC vault, assign it the role 'Key Vault Secrets Officer'"


def _sdk() -> tuple[Any, Any, Any]:
    """The SDK modules, imported only now (a missing extra: ``ConfigError`` with the pip line)."""
    identity = import_sdk("azure", "azure.identity")
    exceptions = import_sdk("azure", "azure.core.exceptions")
    secrets = import_sdk("azure", "azure.keyvault.secrets")
    return identity, exceptions, secrets.SecretClient


def _quiet_sdk_logs() -> None:
    """The SDK logs every HTTP exchange at INFO; kes-flask's error log says what failed instead."""
    for name in ("azure", "msal"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _credential(identity: Any, config: AzureKeystoreConfig) -> Any:
    """The credential the config names; the SDK reads its own environment variables too.

    ``AZURE_AUTHORITY_HOST`` points Entra ID sign-ins at a national or private cloud (or Azure
    Stack Hub). When an operator sets it, the authority is trusted as given: MSAL's instance
    discovery would otherwise ask login.microsoftonline.com to vouch for it.
    """
    timeouts = {"connection_timeout": 10, "read_timeout": 30}  # sign-ins must not hang either
    options: dict[str, Any] = dict(timeouts)
    if os.environ.get("AZURE_AUTHORITY_HOST"):
        options["disable_instance_discovery"] = True
    if config.auth == "credentials":
        return identity.ClientSecretCredential(
            config.tenant_id, config.client_id, config.client_secret, **options
        )
    if config.auth == "managed_identity":
        return identity.ManagedIdentityCredential(
            client_id=config.managed_identity_client_id, **timeouts
        )
    return identity.DefaultAzureCredential(**options)


class AzureKeystore:
    def __init__(self, config: AzureKeystoreConfig) -> None:
        _check_endpoint(config.endpoint)
        identity, self._errors, secret_client = _sdk()
        _quiet_sdk_logs()
        # Every error the SDK raises (ValueError: a challenge naming a foreign resource).
        self._sdk_errors = (self._errors.AzureError, ValueError)
        self.endpoint = config.endpoint.rstrip("/")
        self.description = f"Azure KeyVault: {config.endpoint}"
        self._auth = config.auth
        self._credential = _credential(identity, config)
        self._client = secret_client(
            vault_url=self.endpoint,
            credential=self._credential,
            api_version=API_VERSION,
            **_CLIENT_OPTIONS,
        )
        import requests

        self._probe = requests.Session()

    # --- the keystore interface ----------------------------------------------------------

    def create(self, name: str, value: bytes) -> None:
        _check_name(name)
        what = f"failed to create '{name}'"
        try:
            existing = self._client.get_secret(name)
        except self._errors.ResourceNotFoundError:
            existing = None
        except self._sdk_errors as err:
            raise self._failure(
                what, f"failed to check whether '{name}' already exists", err, "Get"
            ) from None
        if existing is not None:
            problem = _unusable(existing.properties)
            if not problem:
                raise KeyExistsError(name)
            raise KeystoreError(
                f"azure: {what}: failed to check whether '{name}' already exists: {problem}"
            )
        code, err = self._put(name, value.decode("ascii"))
        if code in (_DELETED_RECOVERABLE, _BEING_DELETED):
            # A soft-deleted secret holds the name: purge it, then set again (upstream's dance).
            self._purge(name, _PURGE_ATTEMPTS_CREATE, what)
            for attempt in range(_PUT_ATTEMPTS):
                if attempt:
                    _pause()
                code, err = self._put(name, value.decode("ascii"))
                if code != _BEING_DELETED:
                    break
        if err is None:
            return
        if code == _DELETED_RECOVERABLE:
            raise KeystoreError(
                f"azure: {what}: key already exists but is currently marked as deleted. "
                f"Either restore or purge '{name}'"
            )
        raise self._failure(what, "", err, "Set") from None

    def get(self, name: str) -> bytes:
        _check_name(name)
        what = f"failed to get '{name}'"
        try:
            pages = self._client.list_properties_of_secret_versions(name).by_page()
            versions = list(next(pages, []))
        except self._errors.ResourceNotFoundError:
            raise KeyNotFoundError(name) from None
        except self._sdk_errors as err:
            raise self._failure(what, "failed to list versions", err, "List") from None
        if pages.continuation_token:
            raise KeystoreError(
                f'azure: {what}: There are too many versions of "{name}". (TooManyObjectVersions)'
            )
        dated = [v for v in versions if v.created_on is not None]
        if not dated:
            raise KeyNotFoundError(name)
        first = min(dated, key=lambda v: v.created_on)
        try:
            secret = self._client.get_secret(name, first.version)
        except self._errors.ResourceNotFoundError:
            raise KeyNotFoundError(name) from None
        except self._sdk_errors as err:
            raise self._failure(
                what, f"failed to read version {first.version}", err, "Get"
            ) from None
        problem = _unusable(secret.properties)
        if problem:
            raise KeystoreError(f"azure: {what}: {problem}")
        if secret.value is None:
            raise KeystoreError(f"azure: {what}: the secret has no value")
        return secret.value.encode("utf-8")

    def delete(self, name: str) -> None:
        _check_name(name)
        what = f"failed to delete '{name}'"
        try:
            self._client.begin_delete_secret(name)  # returns once Key Vault accepted the delete
        except self._errors.ResourceNotFoundError:
            pass  # deleting a missing key succeeds (upstream); a soft-deleted one is purged
        except self._sdk_errors as err:
            raise self._failure(what, "", err, "Delete") from None
        self._purge(name, _PURGE_ATTEMPTS_DELETE, what)

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        try:
            names = [item.name for item in self._client.list_properties_of_secrets()]
        except self._sdk_errors as err:
            raise self._failure("failed to list keys", "", err, "List") from None
        return paginate([n for n in names if n], prefix, limit)

    def status(self) -> float:
        """An unauthenticated ``GET`` of the vault URL: any HTTP answer means reachable."""
        start = time.perf_counter()
        try:
            self._probe.get(self.endpoint, timeout=_STATUS_TIMEOUT, allow_redirects=False).close()
        except OSError as err:  # requests' errors are OSErrors
            raise KeystoreUnreachableError(
                f"azure: key vault {self.endpoint} is not reachable: {type(err).__name__}"
            ) from None
        return time.perf_counter() - start

    def close(self) -> None:
        for closable in (self._client, self._credential, self._probe):
            try:
                closable.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass

    # --- helpers ---------------------------------------------------------------------------

    def _put(self, name: str, value: str) -> tuple[str, Exception | None]:
        """Set the value (no content type, tags or attributes); the 409 inner code on conflict."""
        try:
            self._client.set_secret(name, value)
        except self._errors.HttpResponseError as err:
            return (_inner_code(err) if err.status_code == 409 else ""), err
        except self._sdk_errors as err:
            return "", err
        return "", None

    def _purge(self, name: str, attempts: int, what: str) -> None:
        for attempt in range(attempts):
            if attempt:
                _pause()
            try:
                self._client.purge_deleted_secret(name)
                return
            except self._errors.ResourceNotFoundError:
                return  # nothing (left) to purge
            except self._errors.HttpResponseError as err:
                if err.status_code == 409 and _inner_code(err) == _BEING_DELETED:
                    continue
                raise self._failure(what, "failed to purge deleted secret", err, "Purge") from None
            except self._sdk_errors as err:
                raise self._failure(what, "failed to purge deleted secret", err, "Purge") from None
        # Still being deleted after every retry: Azure finishes the purge on its own (upstream).

    def _failure(self, what: str, step: str, err: Exception, permission: str) -> KeystoreError:
        """A message for the error log that says what went wrong and what to change."""
        head = f"azure: {what}: " + (f"{step}: " if step else "")
        errors = self._errors
        status = getattr(err, "status_code", None)
        if isinstance(err, errors.ClientAuthenticationError) and status is None:
            reason = _first_line(err).rstrip(".")
            return KeystoreError(f"{head}cannot sign in to Entra ID: {reason}. {_fix(self._auth)}")
        if isinstance(err, errors.HttpResponseError) and status is not None:
            detail = _detail(err)
            if err.status_code == 403 and _inner_code(err) != "SecretDisabled":
                return KeystoreError(
                    f"{head}insufficient permissions: {detail}. Grant kes-flask's identity the "
                    f"secret permission '{permission}' in the vault's access policies "
                    f"(kes-flask needs Get, List, Set, Delete and Purge) {_ROLE_HINT}"
                )
            if err.status_code == 401:
                return KeystoreError(f"{head}the vault refused the access token: {detail}")
            return KeystoreError(f"{head}{detail}")
        if isinstance(err, (errors.ServiceRequestError, errors.ServiceResponseError)):
            return KeystoreUnreachableError(
                f"{head}cannot reach {self.endpoint}: {_first_line(err)}"
            )
        return KeystoreError(f"{head}{_first_line(err)}")


def _check_endpoint(endpoint: str) -> None:
    """Both SDKs refuse bearer tokens over plain HTTP, so only an https:// URL can ever work."""
    url = urlsplit(endpoint)
    if url.scheme != "https" or not url.hostname:
        raise ConfigError(
            f"invalid Azure Key Vault endpoint '{endpoint}': set keystore.azure.keyvault.endpoint "
            "to the vault's https:// URI, e.g. https://my-vault.vault.azure.net"
        )


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidKeyNameError(
            f"key name '{name}' cannot be stored in Azure Key Vault: secret names may only "
            "contain 0-9, a-z, A-Z and '-' (at most 127 characters)"
        )


def _unusable(properties: Any) -> str:
    """Why a secret version must not be served (upstream checks the same three attributes)."""
    now = datetime.now(timezone.utc)
    if properties.enabled is False:
        return "the secret is disabled (ObjectIsDisabled)"
    if properties.not_before is not None and now < properties.not_before:
        return "the secret must not be used before its activation date (ObjectMustNotBeUsed)"
    if properties.expires_on is not None and now > properties.expires_on:
        return "the secret has expired (ObjectIsExpired)"
    return ""


def _inner_code(err: Any) -> str:
    error = getattr(err, "error", None)
    inner = getattr(error, "innererror", None) or {}
    return str(inner.get("code", "")) if isinstance(inner, dict) else ""


def _detail(err: Any) -> str:
    """``<message> (<code>)`` from Key Vault's error body, like upstream's error strings."""
    error = getattr(err, "error", None)
    message = getattr(error, "message", None) or err.reason or f"HTTP {err.status_code}"
    code = _inner_code(err) or getattr(error, "code", None) or str(err.status_code)
    return f"{message} ({code})"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _fix(auth: str) -> str:
    if auth == "credentials":
        return (
            "Check tenant_id, client_id and client_secret under "
            "keystore.azure.keyvault.credentials (the client secret may have expired)"
        )
    if auth == "managed_identity":
        return (
            "Check keystore.azure.keyvault.managed_identity.client_id and that this identity is "
            "assigned to the machine kes-flask runs on"
        )
    return (
        "No credentials are configured, so the default chain was used: set "
        "keystore.azure.keyvault.credentials or managed_identity, or AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET in kes-flask's environment"
    )


def _pause() -> None:
    """Upstream's wait between conflict retries: 200 ms plus up to 800 ms of jitter."""
    time.sleep(0.2 + random.random() * 0.8)  # noqa: S311 - jitter, not a secret
