"""The HTTP side of the Azure fake: routing, bearer tokens and challenges, faults, permissions.

Requests for Entra ID go to ``tests/fakes/entra.py``; vault requests are authenticated here
(challenge when there is no token, claims challenge when it was revoked), may be answered with
an injected 429/503, are checked against the principal's secret permissions (access policy or
RBAC wording) and then go to the vault's state machine in ``tests/fakes/azure_keyvault.py``.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from tests.fakes.entra import MSI_PATH, Reply

if TYPE_CHECKING:
    from tests.fakes.azure_keyvault import FakeKeyVault


def error(status: int, code: str, message: str, inner: str = "") -> Reply:
    """Key Vault's error body: the code, the message and (when it has one) the inner code."""
    detail: dict = {"code": code, "message": message}
    if inner:
        detail["innererror"] = {"code": inner}
    return Reply(status, {"error": detail})


def challenge(fake: FakeKeyVault, claims: bool = False) -> str:
    authority = f"{fake.base}/{fake.tenant}"
    if claims:
        demand = base64.b64encode(
            json.dumps(
                {"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}}
            ).encode()
        ).decode()
        return (
            f'Bearer realm="", authorization_uri="{authority}/oauth2/authorize", '
            f'error="insufficient_claims", claims="{demand}"'
        )
    return f'Bearer authorization="{authority}", resource="{fake.resource}"'


def permission_denied(fake: FakeKeyVault, principal, method: str, parts: list[str]) -> Reply | None:
    needed = _permission(method, parts)
    if needed is None or needed in principal.permissions:
        return None
    if fake.authorization == "rbac":
        message = (
            "Caller is not authorized to perform action on resource. If role assignments, deny "
            "assignments or role definitions were changed recently, please observe propagation "
            f"time. Caller: appid={principal.client_id};oid={principal.object_id} Action: "
            f"'Microsoft.KeyVault/vaults/secrets/{_RBAC_ACTIONS[needed]}'"
        )
        return error(403, "Forbidden", message, "ForbiddenByRbac")
    message = (
        f"The user, group or application 'appid={principal.client_id};"
        f"oid={principal.object_id};iss=https://sts.windows.net/{fake.tenant}/' does not have "
        f"secrets {needed} permission on key vault 'kes-fake;location=westeurope'. For help "
        "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
    )
    return error(403, "Forbidden", message, "ForbiddenByPolicy")


_RBAC_ACTIONS = {
    "get": "getSecret/action",
    "list": "readMetadata/action",
    "set": "setSecret/action",
    "delete": "delete",
    "purge": "purge/action",
}


def _permission(method: str, parts: list[str]) -> str | None:
    if not parts:
        return None
    if parts[0] == "deletedsecrets":
        return "purge" if method == "DELETE" else "get"
    if len(parts) == 1 or (len(parts) == 3 and parts[2] == "versions"):
        return "list"
    return {"PUT": "set", "DELETE": "delete"}.get(method, "get")


def handler(fake: FakeKeyVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with fake.lock:
                fake.connections.add(self.connection)

        def finish(self) -> None:
            with fake.lock:
                fake.connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format, *args) -> None:
            pass

        def _send(self, reply: Reply) -> None:
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            reply, principal = self._route(url.path, query, raw)
            body = None
            if raw and "json" in (self.headers.get("Content-Type") or ""):
                body = json.loads(raw)
            fake.record(self.command, url.path, query, body, reply.status, principal)
            self._send(reply)

        def _route(self, path: str, query: dict[str, str], raw: bytes) -> tuple[Reply, str]:
            parts = [p for p in path.split("/") if p]
            if path == MSI_PATH:
                return fake.entra.managed_identity(query, self.headers.get("X-IDENTITY-HEADER")), ""
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                return fake.entra.openid_configuration(fake.base, parts[0]), ""
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                return fake.entra.client_credentials(parts[0], raw), ""
            authorization = self.headers.get("Authorization") or ""
            if not authorization.startswith("Bearer "):
                message = "AKV10000: Request is missing a Bearer or PoP token."
                reply = error(401, "Unauthorized", message)
                reply.headers["WWW-Authenticate"] = challenge(
                    fake,
                )
                return reply, ""
            principal, problem = fake.entra.check(authorization[7:], fake.resource)
            if principal is None:
                reply = error(401, "Unauthorized", f"[{problem}] Error validating token")
                reply.headers["WWW-Authenticate"] = challenge(fake, claims=problem == "revoked")
                return reply, ""
            fault = fake.next_fault()
            if fault is not None:
                status, retry_after = fault
                code = "Throttled" if status == 429 else "ServiceUnavailable"
                reply = error(status, code, "Request was not processed: try again later.")
                reply.headers["Retry-After"] = retry_after
                return reply, principal.client_id
            denied = permission_denied(fake, principal, self.command, parts)
            if denied is not None:
                return denied, principal.client_id
            body = json.loads(raw) if raw else None
            return fake.handle(self.command, path, query, body), principal.client_id

        do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _dispatch

    return Handler
