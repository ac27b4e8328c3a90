"""GCP Secret Manager keystore, byte-compatible with Go KES (keystores.md §6).

Each key is a secret named like the key (automatic replication, no labels) whose version 1 holds
the encoded key version. The official client does the authentication; with a service account it
signs its own short-lived JWTs (Google AIP-4111, as Go KES's client does) and renews them when they
expire or the service answers 401. The client runs on its REST transport: it is plain
``requests`` underneath, safe after gunicorn forks (gRPC channels are not), and pointable at any
HTTPS endpoint through the documented ``client_options.api_endpoint``. The SDK is the optional
extra ``kes-flask[gcp]`` and is imported only when a GCP keystore is configured.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import requests

from kes_flask.config.model import GCPKeystoreConfig
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)
from kes_flask.keystore.extras import import_sdk

DEFAULT_ENDPOINT = "https://secretmanager.googleapis.com"
STATUS_TIMEOUT = 10.0
CALL_TIMEOUT = 30.0  # seconds per attempt
RETRY_DEADLINE = 30.0  # seconds for all attempts of one call
# google-api-core's REST transports log request and response bodies (key values) at DEBUG.
QUIET_LOGGERS = ("google", "google.auth", "google.api_core")


def probe_url(endpoint: str) -> str:
    """config.md §4.9.5: the endpoint (a URL or ``host:port``) as an ``https://`` URL."""
    if not endpoint:
        return DEFAULT_ENDPOINT
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def service_account_info(config: GCPKeystoreConfig) -> dict[str, str] | None:
    """The service-account JSON Go KES synthesizes from the config, or None for ADC."""
    fields = (config.client_email, config.client_id, config.private_key_id, config.private_key)
    if not any(fields):
        return None
    for value, what in (
        (config.client_email, "client email"),
        (config.client_id, "client ID"),
        (config.private_key, "client private key"),
        (config.private_key_id, "client private key ID"),
    ):
        if not value:
            raise KeystoreError(f"gcp: no {what} provided")
    return {
        "type": "service_account",
        "project_id": config.project_id,
        "private_key_id": config.private_key_id,
        "private_key": config.private_key.replace("\\n", "\n"),
        "client_email": config.client_email,
        "client_id": config.client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://accounts.google.com/o/oauth2/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/"
            + quote(config.client_email, safe="")
        ),
    }


class GCPKeystore:
    def __init__(self, config: GCPKeystoreConfig) -> None:
        secretmanager = import_sdk("gcp", "google.cloud.secretmanager_v1")
        client_options = import_sdk("gcp", "google.api_core.client_options")
        retry = import_sdk("gcp", "google.api_core.retry")
        self._errors = import_sdk("gcp", "google.api_core.exceptions")
        self._auth_errors = import_sdk("gcp", "google.auth.exceptions")
        for logger in QUIET_LOGGERS:
            logging.getLogger(logger).setLevel(logging.WARNING)
        self.description = f"GCP SecretManager: Project={config.project_id}"
        self.project = f"projects/{config.project_id}"
        self.endpoint = probe_url(config.endpoint)
        credentials = self._credentials(config)
        options = client_options.ClientOptions(api_endpoint=config.endpoint or None)
        self._client = secretmanager.SecretManagerServiceClient(
            credentials=credentials, transport="rest", client_options=options
        )
        # Throttling (429) and "unavailable" (503) are retried with backoff, as Google asks;
        # a refused connection is not: the caller learns at once that the service is down.
        throttled = (self._errors.TooManyRequests, self._errors.ServiceUnavailable)
        self._retry = retry.Retry(
            predicate=retry.if_exception_type(*throttled),
            initial=0.2,
            maximum=5.0,
            multiplier=2.0,
            timeout=RETRY_DEADLINE,
        )
        self._probe = requests.Session()

    @staticmethod
    def _credentials(config: GCPKeystoreConfig) -> Any:
        scopes = list(config.scopes) or None
        info = service_account_info(config)
        if info is None:
            google_auth = import_sdk("gcp", "google.auth")
            try:
                credentials, _ = google_auth.default(scopes=scopes)
            except google_auth.exceptions.DefaultCredentialsError as err:
                raise KeystoreError(
                    "gcp: no credentials: set keystore.gcp.secretmanager.credentials "
                    "(client_email, client_id, private_key_id, private_key) or provide "
                    f"Application Default Credentials: {err}"
                ) from None
            return credentials
        service_account = import_sdk("gcp", "google.oauth2.service_account")
        try:
            return service_account.Credentials.from_service_account_info(info, scopes=scopes)
        except ValueError:
            raise KeystoreError(
                "gcp: keystore.gcp.secretmanager.credentials.private_key is not a PEM private "
                "key (write it with literal \\n between lines, as in the service-account JSON)"
            ) from None

    def _call(self, method: str, name: str, verb: str, **params: Any) -> Any:
        try:
            return getattr(self._client, method)(**params, retry=self._retry, timeout=CALL_TIMEOUT)
        except self._errors.NotFound:
            raise KeyNotFoundError(name) from None
        except self._errors.Conflict as err:
            if method == "create_secret":  # 409 ALREADY_EXISTS
                raise KeyExistsError(name) from None
            raise KeystoreError(f"gcp: failed to {verb} '{name}': {_describe(err)}") from None
        except self._errors.GoogleAPICallError as err:
            raise KeystoreError(f"gcp: failed to {verb} '{name}': {_describe(err)}") from None
        except self._errors.RetryError as err:
            raise KeystoreUnreachableError(
                f"gcp: failed to {verb} '{name}': gave up retrying: {_describe(err.cause)}"
            ) from None
        except self._auth_errors.RefreshError as err:
            raise KeystoreError(f"gcp: failed to {verb} '{name}': authentication: {err}") from None
        except (requests.RequestException, self._auth_errors.TransportError) as err:
            raise KeystoreUnreachableError(
                f"gcp: failed to {verb} '{name}': {type(err).__name__}"
            ) from None

    def create(self, name: str, value: bytes) -> None:
        secret = {"replication": {"automatic": {}}}
        self._call(
            "create_secret",
            name,
            "create",
            request={"parent": self.project, "secret_id": name, "secret": secret},
        )
        try:
            self._call(
                "add_secret_version",
                name,
                "create",
                request={"parent": f"{self.project}/secrets/{name}", "payload": {"data": value}},
            )
        except KeystoreError as err:
            # Go KES parity: the empty secret stays (get: not found, create: exists).
            raise KeystoreError(
                f"{err} (the secret '{name}' was created without a value: delete it before "
                "creating the key again)"
            ) from None

    def get(self, name: str) -> bytes:
        version = f"{self.project}/secrets/{name}/versions/1"  # always version 1, as Go KES
        response = self._call("access_secret_version", name, "read", request={"name": version})
        return bytes(response.payload.data)

    def delete(self, name: str) -> None:
        self._call(
            "delete_secret", name, "delete", request={"name": f"{self.project}/secrets/{name}"}
        )

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        names: list[str] = []
        pages = self._call("list_secrets", "", "list", request={"parent": self.project})
        try:
            for secret in pages:  # the pager fetches the next pages with the same retry
                names.append(secret.name.rsplit("/", 1)[-1])
        except self._errors.GoogleAPICallError as err:
            raise KeystoreError(f"gcp: failed to list secrets: {_describe(err)}") from None
        except (
            self._errors.RetryError,
            self._auth_errors.GoogleAuthError,
            requests.RequestException,
        ) as err:
            raise KeystoreUnreachableError(
                f"gcp: failed to list secrets: {_describe(err)}"
            ) from None
        return paginate(names, prefix, limit)

    def status(self) -> float:
        """An unauthenticated GET of the endpoint, as Go KES does: any HTTP answer is "up"."""
        start = time.monotonic()
        try:
            self._probe.get(self.endpoint, timeout=STATUS_TIMEOUT).close()
        except requests.RequestException as err:
            raise KeystoreUnreachableError(
                f"gcp: secret manager endpoint '{self.endpoint}' is not reachable: "
                f"{type(err).__name__}"
            ) from None
        return time.monotonic() - start

    def close(self) -> None:
        self._probe.close()
        self._client.transport.close()


def _describe(err: BaseException | None) -> str:
    """A short reason without request bodies: the HTTP status and the service's message."""
    if err is None:
        return "unknown error"
    code = getattr(err, "code", None)
    message = getattr(err, "message", None) or type(err).__name__
    return f"{code} {message}" if code else str(message)
