"""The typed KES client for applications: dataclass results, typed errors, log iterators.

    from kes_flask.client import Client, KeyNotFound
    client = Client(["kes-1:7373", "kes-2:7373"], api_key="kes:v1:…", ca_file="ca.crt")
    dek = client.generate_key("my-key", context=b"bucket/object")

Requests follow kms-go: network errors and 503 are retried, several endpoints fail over
(``transport.py``). Connections are kept alive per endpoint and thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar

from kes_flask.auth.identity import APIKey
from kes_flask.client.client import KesClient, error_of
from kes_flask.client.environment import from_environment
from kes_flask.client.metrics import parse_metrics
from kes_flask.client.types import (
    API,
    DEK,
    AuditEvent,
    ErrorEvent,
    IdentityInfo,
    KeyInfo,
    Metrics,
    Policy,
    PolicyInfo,
    SelfInfo,
    Status,
)

Event = TypeVar("Event", AuditEvent, ErrorEvent)


class LogStream(Generic[Event]):
    """Events of a log endpoint as they happen; iterate, and close (or use ``with``)."""

    def __init__(self, client: KesClient, kind: str, decode: type[Event]) -> None:
        head, stream = client.transport.open_stream("GET", f"/v1/log/{kind}")
        if stream is None:
            raise error_of(head)
        self._stream = stream
        self._decode = decode

    def __iter__(self) -> Iterator[Event]:
        for line in self._stream.lines():
            if line.strip():
                yield self._decode.from_json(json.loads(line))

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> LogStream[Event]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Client:
    """One or several KES endpoints with an API key or a client certificate.

    ``endpoints``: ``"host:port"``, ``"https://host:port"`` or a list of them.
    Credentials: ``api_key="kes:v1:…"``, or ``cert_file`` + ``key_file`` (+ ``password`` for an
    encrypted key). Server verification: ``ca_file``, else the system trust store
    (``SSL_CERT_FILE``); ``insecure=True`` skips it (development only).
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        api_key: str | APIKey | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        password: bytes | None = None,
        client_pem: bytes | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float | None = 30.0,
        retry_delay: tuple[float, float] | None = None,
    ) -> None:
        self.wire = KesClient(
            endpoints,
            api_key=api_key,
            cert_file=cert_file,
            key_file=key_file,
            password=password,
            client_pem=client_pem,
            ca_file=ca_file,
            insecure=insecure,
            timeout=timeout,
            retry_delay=retry_delay,
        )

    @classmethod
    def from_environment(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        password: Callable[[], str] | None = None,
        **options: Any,
    ) -> Client:
        """Endpoints and credentials from ``KES_SERVER``, ``KES_API_KEY`` … (see environment.py).

        ``options`` are ``ca_file``, ``insecure``, ``timeout`` as for the constructor.
        """
        settings = from_environment(env, password=password)
        return cls(settings.endpoints, client_pem=settings.credentials_pem, **options)

    @property
    def endpoints(self) -> list[str]:
        return self.wire.endpoints

    def close(self) -> None:
        self.wire.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- server ------------------------------------------------------------------------------

    def version(self) -> str:
        return self.wire.version()

    def is_ready(self) -> bool:
        return self.wire.is_ready()

    def status(self) -> Status:
        """``/v1/status`` plus the round trip (``latency``) and the endpoint that answered."""
        start = time.monotonic()
        response = self.wire.send("GET", "/v1/status")
        latency = timedelta(seconds=time.monotonic() - start)
        if response.status >= 400:
            raise error_of(response)
        return Status.from_json(json.loads(response.body), latency, response.endpoint)

    def apis(self) -> list[API]:
        return [API.from_json(route) for route in self.wire.apis()]

    def metrics(self) -> Metrics:
        return parse_metrics(self.wire.metrics())

    # --- keys --------------------------------------------------------------------------------

    def create_key(self, name: str) -> None:
        """Raises ``KeyExists`` if the name is taken."""
        self.wire.create_key(name)

    def import_key(self, name: str, key: bytes, cipher: str = "AES256") -> None:
        self.wire.import_key(name, key, cipher)

    def describe_key(self, name: str) -> KeyInfo:
        return KeyInfo.from_json(name, self.wire.describe_key(name))

    def delete_key(self, name: str) -> None:
        self.wire.delete_key(name)

    def list_keys(self, prefix: str = "") -> list[str]:
        """Names starting with ``prefix`` (a trailing ``*`` is allowed), sorted."""
        return sorted(self.wire.list_keys(prefix))

    def generate_key(self, name: str, context: bytes = b"") -> DEK:
        return self.wire.generate_key(name, context)

    def encrypt(self, name: str, plaintext: bytes, context: bytes = b"") -> bytes:
        return self.wire.encrypt(name, plaintext, context)

    def decrypt(self, name: str, ciphertext: bytes, context: bytes = b"") -> bytes:
        """Raises ``DecryptionFailed`` for a wrong key, wrong context or modified ciphertext."""
        return self.wire.decrypt(name, ciphertext, context)

    def hmac(self, name: str, message: bytes) -> bytes:
        return self.wire.hmac(name, message)

    # --- policies and identities -------------------------------------------------------------

    def describe_policy(self, name: str) -> PolicyInfo:
        return PolicyInfo.from_json(name, self.wire.describe_policy(name))

    def get_policy(self, name: str) -> Policy:
        return Policy.from_json(name, self.wire.read_policy(name))

    def list_policies(self, prefix: str = "") -> list[str]:
        return self.wire.list_policies(prefix)

    def describe_identity(self, identity: str) -> IdentityInfo:
        return IdentityInfo.from_json(identity, self.wire.describe_identity(identity))

    def describe_self(self) -> SelfInfo:
        return SelfInfo.from_json("", self.wire.describe_self())

    def list_identities(self, prefix: str = "") -> list[str]:
        return sorted(self.wire.list_identities(prefix))

    # --- logs --------------------------------------------------------------------------------

    def audit_log(self) -> LogStream[AuditEvent]:
        """Audit events from now on (``/v1/log/audit``)."""
        return LogStream(self.wire, "audit", AuditEvent)

    def error_log(self) -> LogStream[ErrorEvent]:
        """Error log records from now on (``/v1/log/error``)."""
        return LogStream(self.wire, "error", ErrorEvent)
