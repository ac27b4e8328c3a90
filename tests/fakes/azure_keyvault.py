"""A faithful fake of Azure Key Vault's secrets API (REST api-version 7.5) over real HTTPS.

One loopback server plays the vault and Entra ID (``tests/fakes/entra.py``). It is keyed to the
documented REST API, not to kes-flask: the official ``SecretClient`` and azure-identity credentials
run against it unchanged (``tests/unit/test_fake_azure_keyvault.py``).

* Challenge-based bearer flow: a request without a token gets 401 and
  ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"``.
  Key Vault's resource is the vault host without its first label (``kes.vault.azure.net`` →
  ``vault.azure.net``); for the loopback host ``127.0.0.1`` that rule gives ``0.0.1``, which is
  what the SDK's challenge-resource check accepts. Expired tokens get the same challenge; revoked
  ones (continuous access evaluation) get a claims challenge.
* ``/secrets/{name}`` set/get, ``/secrets/{name}/versions`` and ``/secrets`` with ``nextLink``
  paging (25 a page unless ``maxresults``), names case-insensitive as in Azure.
* Soft delete and purge as a state machine: active → deleting → deleted (recoverable) → purging →
  gone; the transitional states last ``transition_requests`` requests touching the name and answer
  409 ``ObjectIsBeingDeleted``; a recoverable name answers 409 ``ObjectIsDeletedButRecoverable``.
* Access policies (403 ``ForbiddenByPolicy``) or RBAC (403 ``ForbiddenByRbac``) per principal,
  injectable 429/503 with ``Retry-After``, an ``api-version`` check on every call.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.fakes.azure_http import error, handler
from tests.fakes.entra import MSI_PATH, Entra, Reply
from tests.fakes.tls import ServerTLS

API_VERSION = "7.5"
PAGE_SIZE = 25
NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
RECOVERY_LEVEL = "Recoverable+Purgeable"


@dataclass
class Version:
    id: str
    value: str
    created: int
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    content_type: str | None = None
    tags: dict | None = None


@dataclass
class Secret:
    name: str
    versions: list[Version] = field(default_factory=list)
    state: str = "active"  # active, deleting, deleted, purging
    countdown: int = 0
    deleted: int = 0


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    body: object
    status: int
    principal: str


class FakeKeyVault:
    """Start it with ``FakeKeyVault(directory).start()``; configure ``vault_url`` as endpoint."""

    def __init__(self, directory: Path, tenant: str = "41a37d4e-b3c4-49f4-b330-1114fb0271c8"):
        self.directory = directory
        self.tls = ServerTLS.create(directory)
        self.ca_file = self.tls.ca
        self.identity_header = secrets.token_hex(16)
        self.entra = Entra(tenant, self.identity_header)
        self.tenant = tenant
        self.secrets: dict[str, Secret] = {}
        self.log: list[Logged] = []
        self.authorization = "policy"  # or "rbac"
        self.transition_requests = 1
        self._faults: list[tuple[int, str]] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeKeyVault:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        server = ThreadingHTTPServer(("127.0.0.1", port), handler(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-keyvault", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut kept-alive connections: the vault becomes unreachable."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    vault_url = base
    authority = base  # AZURE_AUTHORITY_HOST

    @property
    def resource(self) -> str:
        return f"https://0.0.1:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        return self.base + MSI_PATH

    # --- test controls -------------------------------------------------------------------------

    def reset(self) -> None:
        """An empty vault again (registrations and issued tokens stay)."""
        with self.lock:
            self.secrets.clear()
            self.log.clear()
            self._faults.clear()
            self.authorization = "policy"
            self.transition_requests = 1

    def fail_next(self, count: int, status: int = 429, retry_after: str = "0") -> None:
        """The next ``count`` authenticated vault calls answer ``status`` with ``Retry-After``."""
        with self.lock:
            self._faults.extend([(status, retry_after)] * count)

    def place(self, name: str, value: str, created: int | None = None, **attributes) -> Version:
        """Put a secret version straight into the store (as another writer, e.g. Go KES, would)."""
        with self.lock:
            secret = self.secrets.setdefault(name.lower(), Secret(name))
            version = Version(
                secrets.token_hex(16), value, created or int(time.time()), **attributes
            )
            secret.versions.append(version)
            return version

    def record(self, method: str, path: str, query: dict, body, status: int, who: str) -> None:
        with self.lock:
            self.log.append(Logged(method, path, query, body, status, who))

    def requests_for(self, method: str, prefix: str = "/") -> list[Logged]:
        with self.lock:
            return [e for e in self.log if e.method == method and e.path.startswith(prefix)]

    # --- the vault -------------------------------------------------------------------------------

    def _advance(self, secret: Secret) -> Secret | None:
        """Move a transitional state on by one request; None when the secret is gone."""
        if secret.state in ("deleting", "purging"):
            if secret.countdown > 0:
                secret.countdown -= 1
            elif secret.state == "deleting":
                secret.state = "deleted"
            else:
                del self.secrets[secret.name.lower()]
                return None
        return secret

    def _lookup(self, name: str) -> Secret | None:
        secret = self.secrets.get(name.lower())
        return None if secret is None else self._advance(secret)

    def handle(self, method: str, path: str, query: dict[str, str], body: object) -> Reply:
        parts = [p for p in path.split("/") if p]
        if query.get("api-version") != API_VERSION:
            message = f"The specified version ({query.get('api-version')}) is not recognized."
            return error(400, "BadParameter", message)
        if not parts:
            return error(404, "NotFound", "Not found")
        if len(parts) >= 2 and not NAME.match(parts[1]):
            return error(
                400, "BadParameter", f"The request URI contains an invalid name: {parts[1]}"
            )
        with self.lock:
            if parts[0] == "secrets":
                return self._secrets(method, parts[1:], query, body)
            if parts[0] == "deletedsecrets" and len(parts) == 2:
                return self._deleted(method, parts[1])
        return error(404, "NotFound", "Not found")

    def _secrets(self, method: str, parts: list[str], query: dict[str, str], body) -> Reply:
        if not parts:
            if method != "GET":
                return error(405, "MethodNotAllowed", "Method not allowed")
            live = [
                s for s in list(self.secrets.values()) if self._advance(s) and s.state == "active"
            ]
            live = sorted(live, key=lambda s: s.name.lower())
            items = [self._item(s.name, s.versions[-1], versioned=False) for s in live]
            return self._page("/secrets", items, query)
        name = parts[0]
        secret = self._lookup(name)
        if len(parts) == 1 and method == "PUT":
            return self._set(name, secret, body)
        if len(parts) == 1 and method == "DELETE":
            if secret is None or secret.state != "active":
                return _not_found(name)
            secret.state, secret.countdown = "deleting", self.transition_requests
            secret.deleted = int(time.time())
            return Reply(200, self._deleted_bundle(secret))
        if method != "GET":
            return error(405, "MethodNotAllowed", "Method not allowed")
        active = secret is not None and secret.state == "active"
        if len(parts) == 2 and parts[1] == "versions":
            versions = sorted(secret.versions, key=lambda v: -v.created) if active else []
            items = [self._item(secret.name, v, versioned=True) for v in versions]
            return self._page(f"/secrets/{name}/versions", items, query)
        if not active:
            return _not_found(name)
        if len(parts) == 1 or parts[1] == "":
            return self._bundle(secret, secret.versions[-1])
        for version in secret.versions:
            if version.id == parts[1].lower():
                return self._bundle(secret, version)
        return _not_found(name)

    def _set(self, name: str, secret: Secret | None, body) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return error(400, "BadParameter", "Property value is required")
        if secret is not None and secret.state in ("deleting", "purging"):
            return error(
                409,
                "Conflict",
                f"Secret {name} is currently being deleted.",
                "ObjectIsBeingDeleted",
            )
        if secret is not None and secret.state == "deleted":
            message = (
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged."
            )
            return error(409, "Conflict", message, "ObjectIsDeletedButRecoverable")
        attributes = body.get("attributes") or {}
        version = self.place(
            name,
            body["value"],
            content_type=body.get("contentType"),
            tags=body.get("tags"),
            enabled=attributes.get("enabled", True),
            nbf=attributes.get("nbf"),
            exp=attributes.get("exp"),
        )
        return self._bundle(self.secrets[name.lower()], version)

    def _deleted(self, method: str, name: str) -> Reply:
        secret = self._lookup(name)
        if method == "GET":
            if secret is None or secret.state != "deleted":
                return error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            return Reply(200, self._deleted_bundle(secret))
        if method != "DELETE":
            return error(405, "MethodNotAllowed", "Method not allowed")
        if secret is not None and secret.state == "deleting":
            return error(
                409,
                "Conflict",
                f"Secret {name} is currently being deleted.",
                "ObjectIsBeingDeleted",
            )
        if secret is None or secret.state != "deleted":
            return error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        secret.state, secret.countdown = "purging", self.transition_requests
        return Reply(204)

    # --- representations -----------------------------------------------------------------------

    def _attributes(self, version: Version) -> dict:
        attributes = {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": 90,
        }
        if version.nbf is not None:
            attributes["nbf"] = version.nbf
        if version.exp is not None:
            attributes["exp"] = version.exp
        return attributes

    def _item(self, name: str, version: Version, versioned: bool) -> dict:
        item: dict = {
            "id": f"{self.base}/secrets/{name}" + (f"/{version.id}" if versioned else ""),
            "attributes": self._attributes(version),
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        if version.tags is not None:
            item["tags"] = version.tags
        return item

    def _bundle(self, secret: Secret, version: Version) -> Reply:
        if not version.enabled:
            message = "Operation get is not allowed on a disabled secret."
            return error(403, "Forbidden", message, "SecretDisabled")
        bundle = self._item(secret.name, version, versioned=True)
        bundle["value"] = version.value
        return Reply(200, bundle)

    def _deleted_bundle(self, secret: Secret) -> dict:
        bundle = self._item(secret.name, secret.versions[-1], versioned=True)
        bundle.update(
            recoveryId=f"{self.base}/deletedsecrets/{secret.name}",
            deletedDate=secret.deleted,
            scheduledPurgeDate=secret.deleted + 90 * 86400,
        )
        return bundle

    def _page(self, path: str, items: list[dict], query: dict[str, str]) -> Reply:
        size = int(query.get("maxresults") or PAGE_SIZE)
        offset = 0
        if "$skiptoken" in query:
            offset = json.loads(base64.urlsafe_b64decode(query["$skiptoken"]))["NextMarker"]
        page: dict = {"value": items[offset : offset + size], "nextLink": None}
        if offset + size < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"NextMarker": offset + size}).encode())
            page["nextLink"] = (
                f"{self.base}{path}?api-version={API_VERSION}&$skiptoken={token.decode()}"
                f"&maxresults={size}"
            )
        return Reply(200, page)

    def next_fault(self) -> tuple[int, str] | None:
        with self.lock:
            return self._faults.pop(0) if self._faults else None


def _not_found(name: str) -> Reply:
    message = (
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted "
        "this secret you may be able to recover it using the correct recovery command. For help "
        "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    )
    return error(404, "SecretNotFound", message)
