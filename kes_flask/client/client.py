"""A small KES client: mutual TLS with an API key or a certificate, one keep-alive connection
per thread, request bodies sent chunked like the Go client sends them."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import threading
from base64 import b64decode, b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from kes_flask.auth.certs import certificate_pem, client_certificate_for_api_key, private_key_pem
from kes_flask.auth.identity import APIKey
from kes_flask.client.errors import KesServerError


@dataclass(frozen=True)
class DEK:
    plaintext: bytes
    ciphertext: bytes


def _client_context(
    api_key: APIKey | None,
    cert_file: str | None,
    key_file: str | None,
    ca_file: str | None,
    insecure: bool,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # this client speaks HTTP/1.1 only
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(ca_file)
    else:
        context.load_default_certs()
    if api_key is not None:
        # ssl loads certificates only from files: write a 0600 temp file, load it, remove it.
        cert = client_certificate_for_api_key(api_key)
        with tempfile.TemporaryDirectory(prefix="kes-client-") as directory:
            path = os.path.join(directory, "client.pem")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(private_key_pem(api_key.private_key) + certificate_pem(cert))
            context.load_cert_chain(path)
    elif cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class KesClient:
    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | APIKey | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 30.0,
    ) -> None:
        url = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 7373
        if isinstance(api_key, str):
            api_key = APIKey.parse(api_key)
        self.context = _client_context(api_key, cert_file, key_file, ca_file, insecure)
        self.timeout = timeout
        self._local = threading.local()

    # --- transport ---------------------------------------------------------------------

    def connection(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=self.timeout
            )
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; bodies go out chunked (no Content-Length) exactly like kms-go's."""
        headers = {"User-Agent": "kes-flask-client"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            if content_type:
                headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self.connection()
            try:
                if data is not None:
                    conn.request(
                        method, path, body=iter([data]), headers=headers, encode_chunked=True
                    )
                else:
                    conn.request(method, path, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                return response.status, dict(response.getheaders()), payload
            except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLEOFError):
                self.close()  # a kept-alive connection the server closed; retry once on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
    ) -> Any:
        status, headers, payload = self.request(method, path, body, content_type)
        if status >= 400:
            raise _error(status, headers, payload)
        if headers.get("Content-Type", "").startswith("application/json") and payload:
            return json.loads(payload)
        return payload

    # --- API ---------------------------------------------------------------------------

    def version(self) -> str:
        return self._call("GET", "/version")["version"]

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def is_ready(self) -> bool:
        return self.request("GET", "/v1/ready")[0] == 200

    def apis(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/api")

    def metrics(self) -> str:
        return self._call("GET", "/v1/metrics").decode()

    def create_key(self, name: str) -> None:
        self._call("POST", f"/v1/key/create/{quote(name)}")

    def import_key(self, name: str, key: bytes, cipher: str = "AES256") -> None:
        self._call("POST", f"/v1/key/import/{quote(name)}", {"key": _b64(key), "cipher": cipher})

    def describe_key(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/key/describe/{quote(name)}")

    def delete_key(self, name: str) -> None:
        self._call("DELETE", f"/v1/key/delete/{quote(name)}")

    def list_keys(self, pattern: str = "") -> list[str]:
        return self._call("GET", f"/v1/key/list/{quote(pattern)}")["names"]

    def generate_key(self, name: str, context: bytes = b"") -> DEK:
        body = {"context": _b64(context)} if context else {}
        reply = self._call("POST", f"/v1/key/generate/{quote(name)}", body)
        return DEK(b64decode(reply["plaintext"]), b64decode(reply["ciphertext"]))

    def encrypt(self, name: str, plaintext: bytes, context: bytes = b"") -> bytes:
        body = {"plaintext": _b64(plaintext)} | ({"context": _b64(context)} if context else {})
        return b64decode(self._call("POST", f"/v1/key/encrypt/{quote(name)}", body)["ciphertext"])

    def decrypt(self, name: str, ciphertext: bytes, context: bytes = b"") -> bytes:
        body = {"ciphertext": _b64(ciphertext)} | ({"context": _b64(context)} if context else {})
        return b64decode(self._call("POST", f"/v1/key/decrypt/{quote(name)}", body)["plaintext"])

    def hmac(self, name: str, message: bytes) -> bytes:
        reply = self._call(
            "PUT", f"/v1/key/hmac/{quote(name)}", {"message": _b64(message)}, content_type=None
        )
        return b64decode(reply["hmac"])

    def describe_policy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/policy/describe/{quote(name)}")

    def read_policy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/policy/read/{quote(name)}")

    def list_policies(self, pattern: str = "") -> list[str]:
        return self._call("GET", f"/v1/policy/list/{quote(pattern)}")["names"]

    def describe_identity(self, identity: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/identity/describe/{quote(identity)}")

    def list_identities(self, pattern: str = "") -> list[str]:
        path = f"/v1/identity/list/{quote(pattern)}"
        return self._call("GET", path)["identities"]

    def describe_self(self) -> dict[str, Any]:
        return self._call("GET", "/v1/identity/self/describe")

    def log_stream(self, kind: str) -> Iterator[dict[str, Any]]:
        """Events of ``/v1/log/<kind>`` as they happen, on a dedicated connection."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout
        )
        try:
            conn.request("GET", f"/v1/log/{kind}")
            response = conn.getresponse()
            if response.status >= 400:
                raise _error(response.status, dict(response.getheaders()), response.read())
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _error(status: int, headers: dict[str, str], payload: bytes) -> KesServerError:
    if headers.get("Content-Type", "").strip().startswith("application/json"):
        try:
            body = json.loads(payload)
            return KesServerError(status, body.get("error") or body.get("message", ""))
        except (ValueError, AttributeError):
            pass
    return KesServerError(status, payload.decode("utf-8", "replace"))
