"""The wire-level client: every route of api.md, answers as the server's parsed JSON.

``KesClient`` is what the test suites use to check the wire format (dicts exactly as sent);
applications use the typed ``kes_flask.client.Client`` built on it.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from kes_flask.auth.certs import certificate_pem, client_certificate_for_api_key, private_key_pem
from kes_flask.auth.identity import APIKey
from kes_flask.client.errors import KesServerError, server_error
from kes_flask.client.transport import Response, Transport, tls_context
from kes_flask.client.types import DEK


def credentials_pem(
    api_key: str | APIKey | None,
    cert_file: str | None,
    key_file: str | None,
    password: bytes | None = None,
) -> bytes | None:
    """The client key and certificate as one PEM text (``None``: no client certificate).

    An API key becomes a fresh self-signed Ed25519 certificate, as MinIO and ``kes`` make one.
    A key file may be encrypted, also in the legacy form ``kes identity new --encrypt`` writes.
    """
    if api_key is not None:
        key = APIKey.parse(api_key) if isinstance(api_key, str) else api_key
        return private_key_pem(key.private_key) + certificate_pem(
            client_certificate_for_api_key(key)
        )
    if cert_file:
        from kes_flask.auth.certs import load_private_key_pem

        with open(key_file or cert_file, "rb") as file:
            key_pem = private_key_pem(load_private_key_pem(file.read(), password))
        with open(cert_file, "rb") as file:
            return key_pem + file.read()
    return None


class KesClient:
    """Calls a KES server (or several: ``endpoint`` may be a list) and returns its JSON."""

    def __init__(
        self,
        endpoint: str | Sequence[str],
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
        endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        if client_pem is None:
            client_pem = credentials_pem(api_key, cert_file, key_file, password)
        context = tls_context(client_pem, ca_file, insecure)
        extra = {"retry_delay": retry_delay} if retry_delay is not None else {}
        self.transport = Transport(endpoints, context, timeout, **extra)
        first = urlsplit(self.transport.endpoints[0])
        self.host, self.port = first.hostname or "", first.port or 443
        self.context = context
        self.timeout = timeout

    @property
    def endpoints(self) -> list[str]:
        return list(self.transport.endpoints)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> KesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> tuple[int, dict[str, str], bytes]:
        """One request (JSON body sent chunked like kms-go's); status, headers, body."""
        response = self.send(method, path, body, content_type)
        return response.status, response.headers, response.body

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> Response:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            if content_type:
                headers["Content-Type"] = content_type
        return self.transport.send(method, path, data, headers)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> Any:
        response = self.send(method, path, body, content_type)
        if response.status >= 400:
            raise error_of(response)
        if response.header("Content-Type").startswith("application/json") and response.body:
            return json.loads(response.body)
        return response.body

    # --- API ---------------------------------------------------------------------------

    def version(self) -> str:
        return self._call("GET", "/version")["version"]

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def is_ready(self) -> bool:
        return self.send("GET", "/v1/ready").status == 200

    def apis(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/api")

    def metrics(self) -> str:
        return self._call("GET", "/v1/metrics").decode()

    def create_key(self, name: str) -> None:
        self._call("POST", f"/v1/key/create/{_escape(name)}")

    def import_key(self, name: str, key: bytes, cipher: str = "AES256") -> None:
        self._call("POST", f"/v1/key/import/{_escape(name)}", {"key": _b64(key), "cipher": cipher})

    def describe_key(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/key/describe/{_escape(name)}")

    def delete_key(self, name: str) -> None:
        self._call("DELETE", f"/v1/key/delete/{_escape(name)}")

    def list_keys(self, pattern: str = "") -> list[str]:
        """All names matching the prefix pattern, following ``continue_at`` like kms-go."""
        names: list[str] = []
        prefix = pattern
        while True:
            reply = self._call("GET", f"/v1/key/list/{_escape(prefix)}")
            names.extend(reply.get("names") or [])
            prefix = reply.get("continue_at") or ""
            if not prefix:
                return names

    def generate_key(self, name: str, context: bytes = b"") -> DEK:
        body = {"context": _b64(context)} if context else {}
        reply = self._call("POST", f"/v1/key/generate/{_escape(name)}", body)
        return DEK(b64decode(reply["plaintext"]), b64decode(reply["ciphertext"]))

    def encrypt(self, name: str, plaintext: bytes, context: bytes = b"") -> bytes:
        body = {"plaintext": _b64(plaintext)} | ({"context": _b64(context)} if context else {})
        return b64decode(self._call("POST", f"/v1/key/encrypt/{_escape(name)}", body)["ciphertext"])

    def decrypt(self, name: str, ciphertext: bytes, context: bytes = b"") -> bytes:
        body = {"ciphertext": _b64(ciphertext)} | ({"context": _b64(context)} if context else {})
        return b64decode(self._call("POST", f"/v1/key/decrypt/{_escape(name)}", body)["plaintext"])

    def hmac(self, name: str, message: bytes) -> bytes:
        reply = self._call(
            "PUT", f"/v1/key/hmac/{_escape(name)}", {"message": _b64(message)}, content_type=None
        )
        return b64decode(reply["hmac"])

    def describe_policy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/policy/describe/{_escape(name)}")

    def read_policy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/policy/read/{_escape(name)}")

    def list_policies(self, pattern: str = "") -> list[str]:
        return self._call("GET", f"/v1/policy/list/{_escape(pattern)}").get("names") or []

    def describe_identity(self, identity: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/identity/describe/{_escape(identity)}")

    def list_identities(self, pattern: str = "") -> list[str]:
        path = f"/v1/identity/list/{_escape(pattern)}"
        return self._call("GET", path).get("identities") or []

    def describe_self(self) -> dict[str, Any]:
        return self._call("GET", "/v1/identity/self/describe")

    def log_stream(self, kind: str) -> Iterator[dict[str, Any]]:
        """Events of ``/v1/log/<kind>`` as they happen, on a dedicated connection."""
        head, stream = self.transport.open_stream("GET", f"/v1/log/{kind}")
        if stream is None:
            raise error_of(head)
        try:
            for line in stream.lines():
                if line.strip():
                    yield json.loads(line)
        finally:
            stream.close()


def _escape(name: str) -> str:
    return quote(name)


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def error_of(response: Response) -> KesServerError:
    """kms-go's ``parseErrorResponse``: JSON ``error`` wins over ``message``; else the body."""
    if response.header("Content-Type").strip().startswith("application/json"):
        try:
            body = json.loads(response.body)
            return server_error(response.status, body.get("error") or body.get("message", ""))
        except (ValueError, AttributeError):
            pass
    return server_error(response.status, response.body.decode("utf-8", "replace"))
