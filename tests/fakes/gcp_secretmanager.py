"""A faithful fake of GCP Secret Manager v1 over HTTPS, as the official client's REST transport
calls it, plus an OAuth token endpoint.

Keyed to the documented REST API (https://cloud.google.com/secret-manager/docs/reference/rest):
``projects.secrets`` create (``?secretId=``), get, delete, list (``pageSize``/``pageToken``),
``:addVersion``, ``versions`` list/get and ``versions/*:access``; errors as Google's JSON error
body ``{"error": {"code", "message", "status"}}``. Resource names in answers carry the project
*number*, as the real service does. Payloads are checked against ``dataCrc32c`` when sent and
answered with it.

Authentication is checked, never faked: see ``tests/fakes/google_oauth.py`` (service-account
JWTs and the ``/token`` endpoint).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.google_oauth import CLOUD_PLATFORM, AuthError, GoogleAuth
from tests.fakes.tls import ServerTLS

__all__ = ["CLOUD_PLATFORM", "FakeSecretManager", "crc32c"]

API_AUDIENCE = "https://secretmanager.googleapis.com/"
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MAX_PAYLOAD = 64 * 1024
MAX_PAGE_SIZE = 25000


class APIError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Secret:
    create_time: str
    versions: list[tuple[bytes, str]] = field(default_factory=list)  # (data, create time)
    etag: str = field(default_factory=lambda: f'"{secrets.token_hex(6)}"')


class FakeSecretManager:
    def __init__(self, tls: ServerTLS, project_id: str, project_number: str = "314159265") -> None:
        self.tls = tls
        self.project_id = project_id
        self.project_number = project_number
        self.page_size = 100  # the server's choice when the client sends no pageSize
        self.secrets: dict[str, Secret] = {}
        self.faults: deque[tuple[int, str]] = deque()
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.down = False  # True: every connection is closed without an answer (an outage)
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.token_uri = f"{self.endpoint}/token"
        self.auth = GoogleAuth(self.token_uri, API_AUDIENCE)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- test controls ------------------------------------------------------------------------
    def start(self) -> FakeSecretManager:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_service_account(self, email: str, key_id: str, public_key: rsa.RSAPublicKey) -> None:
        self.auth.add_service_account(email, key_id, public_key)

    def reset(self) -> None:
        with self._lock:
            self.secrets.clear()
            self.faults.clear()
            self.log.clear()

    def fail_next(self, count: int, code: int, status: str) -> None:
        with self._lock:
            self.faults.extend([(code, status)] * count)

    def expire_tokens(self) -> None:
        """Every token issued so far (self-signed or granted) is expired from now on."""
        self.auth.expire_tokens()

    @property
    def not_before(self) -> int:
        return self.auth.not_before

    @property
    def token_grants(self) -> int:
        return self.auth.token_grants

    # -- the Secret Manager API --------------------------------------------------------------
    def _name(self, secret: str, version: int | None = None) -> str:
        name = f"projects/{self.project_number}/secrets/{secret}"
        return name if version is None else f"{name}/versions/{version}"

    def _secret_json(self, name: str, secret: Secret) -> dict[str, Any]:
        return {
            "name": self._name(name),
            "replication": {"automatic": {}},
            "createTime": secret.create_time,
            "etag": secret.etag,
        }

    def _version_json(self, name: str, number: int, created: str) -> dict[str, Any]:
        return {
            "name": self._name(name, number),
            "createTime": created,
            "state": 1,  # ENABLED (the client asks for enum-encoding=int)
            "etag": f'"{number}"',
            "clientSpecifiedPayloadChecksum": False,
        }

    def _lookup(self, name: str) -> Secret:
        secret = self.secrets.get(name)
        if secret is None:
            raise APIError(404, "NOT_FOUND", f"Secret [{self._name(name)}] not found.")
        return secret

    def _version(self, name: str, version: str) -> tuple[int, bytes, str]:
        secret = self.secrets.get(name)
        if secret is not None and version == "latest" and secret.versions:
            version = str(len(secret.versions))
        if secret is None or not version.isdigit() or not 0 < int(version) <= len(secret.versions):
            full = f"{self._name(name)}/versions/{version}"
            raise APIError(404, "NOT_FOUND", f"Secret Version [{full}] not found.")
        data, created = secret.versions[int(version) - 1]
        return int(version), data, created

    def _page(self, items: list[Any], query: dict[str, list[str]]) -> tuple[list[Any], str]:
        size = int(query.get("pageSize", ["0"])[0] or 0) or self.page_size
        size = min(size, MAX_PAGE_SIZE)
        start = 0
        if query.get("pageToken", [""])[0]:
            try:
                start = int(_b64url(query["pageToken"][0]).decode().removeprefix("offset:"))
            except ValueError:
                raise APIError(400, "INVALID_ARGUMENT", "Invalid page token.") from None
        nxt = start + size
        token = (
            base64.urlsafe_b64encode(f"offset:{nxt}".encode()).decode() if nxt < len(items) else ""
        )
        return items[start:nxt], token

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        match = re.fullmatch(r"/v1/projects/([^/:]+)/secrets(?:/([^/:]+))?(.*)", path)
        if match is None:
            raise APIError(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        project, name, rest = match.groups()
        if project not in (self.project_id, self.project_number):
            raise APIError(403, "PERMISSION_DENIED", f"Permission denied on project {project}.")
        if name is None and rest == "":
            if method == "POST":
                return self._create(query, body)
            if method == "GET":
                names = sorted(self.secrets)
                page, token = self._page(names, query)
                answer: dict[str, Any] = {"totalSize": len(names)}
                if page:
                    answer["secrets"] = [self._secret_json(n, self.secrets[n]) for n in page]
                if token:
                    answer["nextPageToken"] = token
                return answer
        elif rest == "" and method == "GET":
            return self._secret_json(name, self._lookup(name))
        elif rest == "" and method == "DELETE":
            self._lookup(name)
            del self.secrets[name]
            return {}
        elif rest == ":addVersion" and method == "POST":
            return self._add_version(name, body)
        elif rest == "/versions" and method == "GET":
            secret = self._lookup(name)
            numbered = list(enumerate(secret.versions, 1))[::-1]  # newest first
            page, token = self._page(numbered, query)
            answer = {"totalSize": len(numbered)}
            if page:
                answer["versions"] = [self._version_json(name, n, c) for n, (_, c) in page]
            if token:
                answer["nextPageToken"] = token
            return answer
        elif (version := re.fullmatch(r"/versions/([^/:]+)(:access)?", rest)) and method == "GET":
            number, data, created = self._version(name, version.group(1))
            if version.group(2) is None:
                return self._version_json(name, number, created)
            payload = {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc32c(data))}
            return {"name": self._name(name, number), "payload": payload}
        raise APIError(404, "NOT_FOUND", f"The requested URL {path} was not found.")

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            raise APIError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        if not isinstance(value, dict):
            raise APIError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        return value

    def _create(self, query: dict[str, list[str]], body: bytes) -> dict[str, Any]:
        secret_id = query.get("secretId", [""])[0]
        if not SECRET_ID.match(secret_id):
            raise APIError(
                400,
                "INVALID_ARGUMENT",
                "Secret id contains invalid characters or is too long: letters, numbers, "
                "hyphens and underscores, at most 255.",
            )
        request = self._json(body)
        replication = request.get("replication")
        if not isinstance(replication, dict) or not (
            "automatic" in replication or "userManaged" in replication
        ):
            raise APIError(400, "INVALID_ARGUMENT", "Secret.replication is required.")
        if secret_id in self.secrets:
            raise APIError(
                409, "ALREADY_EXISTS", f"Secret [{self._name(secret_id)}] already exists."
            )
        self.secrets[secret_id] = secret = Secret(_now_rfc3339())
        return self._secret_json(secret_id, secret)

    def _add_version(self, name: str, body: bytes) -> dict[str, Any]:
        secret = self._lookup(name)
        payload = self._json(body).get("payload") or {}
        try:
            data = base64.b64decode(payload.get("data", ""), validate=True)
        except ValueError:
            raise APIError(400, "INVALID_ARGUMENT", "Invalid payload data.") from None
        if len(data) > MAX_PAYLOAD:
            raise APIError(400, "INVALID_ARGUMENT", "Secret payload data is too large.")
        if "dataCrc32c" in payload and int(payload["dataCrc32c"]) != crc32c(data):
            raise APIError(400, "INVALID_ARGUMENT", "Checksum mismatch for the payload data.")
        created = _now_rfc3339()
        secret.versions.append((data, created))
        return self._version_json(name, len(secret.versions), created)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake.down:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/token" and self.command == "POST":
                    status, answer = fake.auth.grant(parse_qs(body.decode()))
                    fake.log.append((self.command, url.path, status))
                    self._answer(status, json.dumps(answer).encode(), "application/json")
                    return
                if not url.path.startswith("/v1/"):  # what the unauthenticated probe sees
                    fake.log.append((self.command, url.path, 404))
                    self._answer(404, b"Not Found", "text/html")
                    return
                try:
                    with fake._lock:
                        fault = fake.faults.popleft() if fake.faults else None
                    if fault is not None:
                        raise APIError(fault[0], fault[1], "Injected fault, please retry.")
                    try:
                        fake.auth.authenticate(self.headers.get("Authorization", ""))
                    except AuthError as err:
                        raise APIError(err.code, err.status, err.message) from None
                    with fake._lock:
                        answer = fake._route(self.command, url.path, query, body)
                    status = 200
                except APIError as err:
                    status = err.code
                    answer = {
                        "error": {"code": err.code, "message": err.message, "status": err.status}
                    }
                fake.log.append((self.command, url.path, status))
                self._answer(status, json.dumps(answer).encode(), "application/json; charset=UTF-8")

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

        return Handler
