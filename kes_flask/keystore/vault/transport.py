"""HTTP to Vault through hvac: TLS from the config alone, bounded timeouts, few retries.

hvac and requests fill unset options from the environment (``VAULT_ADDR``, ``VAULT_TOKEN``,
``~/.vault-token``, ``VAULT_CACERT``, ``REQUESTS_CA_BUNDLE`` …). An operator's config must be the
only thing that decides where kes-flask sends its credentials and whom it trusts, so every
option is passed explicitly and TLS is done by our own ``ssl.SSLContext`` mounted on the
session: the per-request ``verify``/``cert`` values requests would derive from the environment
never reach the connection pool.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.adapters
import requests
import requests.adapters
from urllib3.util.retry import Retry

from kes_flask.config.model import VaultTLS
from kes_flask.keystore.base import KeystoreError

CONNECT_TIMEOUT = 5.0  # seconds: an unreachable Vault fails a request quickly …
READ_TIMEOUT = 15.0  # … and a hanging one within this bound (Go KES waits 60 s)
HEALTH_PATH = "/v1/sys/health"
HEALTH_PARAMS = {
    name: "299"
    for name in (
        "uninitcode",
        "sealedcode",
        "standbycode",
        "drsecondarycode",
        "performancestandbycode",
    )
}


@dataclass
class Reply:
    """A Vault answer: status, the JSON object (or None) and Vault's error strings."""

    status: int
    body: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def errors(self) -> list[str]:
        errors = (self.body or {}).get("errors")
        return [str(e).strip() for e in errors] if isinstance(errors, list) else []

    def reason(self) -> str:
        """Vault's own reason in one line (multi-error texts flattened), for the error log."""
        text = "; ".join(" ".join(e.replace("*", " ").split()) for e in self.errors if e)
        return f"{self.status} {text}" if text else f"HTTP {self.status}"

    @property
    def has_payload(self) -> bool:
        """Go's "logical read" rule: a 404 carrying data or warnings still counts as an entry."""
        body = self.body or {}
        return body.get("data") is not None or bool(body.get("warnings"))


def tls_context(tls: VaultTLS) -> ssl.SSLContext:
    """The TLS client context: only ``tls.ca`` CAs when set (file or directory), else system."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        for path in _ca_files(tls.ca):
            try:
                context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as err:
                raise KeystoreError(
                    f"vault: tls.ca: '{path}' is not a readable PEM certificate file: {err}"
                ) from None
    if tls.cert:
        try:
            context.load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as err:
            raise KeystoreError(
                f"vault: tls.cert/tls.key: cannot load the client certificate '{tls.cert}' "
                f"with key '{tls.key}': {err}"
            ) from None
    return context


def _ca_files(ca: str) -> list[str]:
    """Every file of a CA directory (recursively, like Go's rootcerts), or the one file."""
    if not os.path.exists(ca):
        raise KeystoreError(f"vault: failed to open '{ca}': no such file or directory")
    if not os.path.isdir(ca):
        return [ca]
    files = sorted(os.path.join(root, name) for root, _dirs, names in os.walk(ca) for name in names)
    if not files:
        raise KeystoreError(f"vault: tls.ca: the directory '{ca}' contains no certificate files")
    return files


class _TLSAdapter(requests.adapters.HTTPAdapter):
    """Uses our SSL context for every HTTPS connection, whatever requests derived."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        retry = Retry(
            total=2,
            connect=2,
            read=0,
            status=2,
            other=0,
            status_forcelist=(412, 429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),  # writes: connect errors only
            backoff_factor=0.5,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        super().__init__(max_retries=retry, pool_connections=4, pool_maxsize=16)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, _ignored = super().build_connection_pool_key_attributes(request, True, None)
        pool_kwargs: dict[str, Any] = {}
        if host_params.get("scheme") == "https":
            pool_kwargs["ssl_context"] = self._context
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        """Nothing to do: the SSL context decides trust and the client certificate."""


class Transport:
    """One session to one Vault; hvac clients per namespace share it."""

    def __init__(self, endpoint: str, tls: VaultTLS) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy, CA bundle or netrc from the environment
        adapter = _TLSAdapter(tls_context(tls))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._clients: dict[str, hvac.Client] = {}

    def client(self, namespace: str = "") -> hvac.Client:
        """An hvac client whose requests carry ``namespace`` (none for "" and "/")."""
        namespace = "" if namespace in ("", "/") else namespace
        client = self._clients.get(namespace)
        if client is None:
            client = hvac.Client(
                url=self.endpoint,
                token="",  # never None: hvac would read VAULT_TOKEN / ~/.vault-token
                cert=False,  # never None: hvac would read VAULT_CLIENT_CERT
                verify=True,  # never None: hvac would read VAULT_CACERT / VAULT_CAPATH
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                session=self.session,
                namespace=namespace or None,
                adapter=hvac.adapters.RawAdapter,
                strict_http=True,
            )
            self._clients[namespace] = client
        return client

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        namespace: str = "",
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request; transport failures raise ``requests.RequestException``."""
        headers = {"X-Vault-Token": token} if token else None
        response = self.client(namespace).adapter.request(
            method, path, headers=headers, json=body, params=params, raise_exception=False
        )
        return Reply(response.status_code, _json_object(response))

    def close(self) -> None:
        self.session.close()


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    if not response.content:
        return None
    try:
        value = json.loads(response.content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def describe_transport_error(err: requests.RequestException) -> str:
    """A short reason for a failed request, without URLs' query strings or request bodies."""
    if isinstance(err, requests.exceptions.SSLError):
        return f"TLS handshake with Vault failed: {_innermost(err)}"
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return f"connecting to Vault timed out after {CONNECT_TIMEOUT:g}s"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return f"Vault did not answer within {READ_TIMEOUT:g}s"
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"cannot connect to Vault: {_innermost(err)}"
    return f"request to Vault failed: {type(err).__name__}"


def _innermost(err: BaseException) -> str:
    """The root cause's text (e.g. "[Errno 111] Connection refused"), not urllib3's wrappers."""
    chain: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and seen not in chain and len(chain) < 10:
        chain.append(seen)
        inner = getattr(seen, "reason", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    for cause in reversed(chain):
        module = type(cause).__module__
        if not module.startswith(("urllib3", "requests")):
            text = str(cause)
            return text if len(text) < 300 else text[:300] + "…"
    return type(err).__name__
