"""The Microsoft Entra ID side of the Azure fake: who may get tokens, and the tokens themselves.

Two token endpoints, shaped as azure-identity calls them:

* client credentials against a custom authority host (``AZURE_AUTHORITY_HOST``): MSAL first reads
  ``/{tenant}/v2.0/.well-known/openid-configuration`` and then posts the form
  ``grant_type=client_credentials&client_id=…&client_secret=…&scope=…`` to the ``token_endpoint``
  it names (``/{tenant}/oauth2/v2.0/token``);
* managed identity, App Service style: ``GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…``
  (+ ``client_id`` for a user-assigned identity) with the ``X-IDENTITY-HEADER: $IDENTITY_HEADER``.

Tokens are opaque random strings with a real expiry: the vault refuses them once expired or revoked.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

PERMISSIONS = frozenset({"get", "list", "set", "delete", "purge"})
MSI_PATH = "/msi/token"


@dataclass
class Principal:
    """An app registration (client id + secret) or a managed identity, and its permissions."""

    object_id: str
    client_id: str
    tenant: str
    secret: str = field(default="", repr=False)
    permissions: set[str] = field(default_factory=lambda: set(PERMISSIONS))


@dataclass
class Token:
    principal: Principal
    audience: str
    expires_at: float
    revoked: bool = False


@dataclass
class Reply:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


class Entra:
    """Registrations, token issuance and token checks (thread-safe)."""

    def __init__(self, tenant: str, identity_header: str) -> None:
        self.tenant = tenant
        self.identity_header = identity_header
        self.apps: dict[str, Principal] = {}
        self.managed: dict[str, Principal] = {}
        self.system_identity: Principal | None = None
        self.token_lifetime = 3600.0
        self.issued: list[str] = []  # every access token handed out, for the no-leak greps
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    # --- registrations -------------------------------------------------------------------

    def add_app(self, client_id: str, secret: str, permissions=PERMISSIONS) -> Principal:
        app = Principal(secrets.token_hex(8), client_id, self.tenant, secret, set(permissions))
        self.apps[client_id] = app
        return app

    def add_managed_identity(self, client_id: str = "", permissions=PERMISSIONS) -> Principal:
        """A user-assigned identity by ``client_id``; empty: the system-assigned identity."""
        identity = Principal(
            secrets.token_hex(8), client_id or "system", self.tenant, "", set(permissions)
        )
        if client_id:
            self.managed[client_id] = identity
        else:
            self.system_identity = identity
        return identity

    # --- tokens ----------------------------------------------------------------------------

    def _issue(self, principal: Principal, audience: str) -> tuple[str, int]:
        token = "fake-entra-" + secrets.token_urlsafe(24)
        lifetime = self.token_lifetime
        with self._lock:
            self._tokens[token] = Token(principal, audience, time.time() + lifetime)
            self.issued.append(token)
        return token, int(lifetime)

    def check(self, token: str, audience: str) -> tuple[Principal | None, str]:
        """The principal behind ``token`` or why it is refused ("missing", "expired", …)."""
        with self._lock:
            info = self._tokens.get(token)
        if info is None:
            return None, "unknown"
        if info.revoked:
            return None, "revoked"
        if time.time() >= info.expires_at:
            return None, "expired"
        if info.audience.rstrip("/") != audience.rstrip("/"):
            return None, "audience"
        return info.principal, ""

    def expired(self, token: str) -> bool:
        with self._lock:
            info = self._tokens.get(token)
        return info is None or time.time() >= info.expires_at

    def revoke_all(self) -> None:
        """Continuous access evaluation: every token issued so far stops working at once."""
        with self._lock:
            for info in self._tokens.values():
                info.revoked = True

    # --- endpoints -------------------------------------------------------------------------

    def openid_configuration(self, base: str, tenant: str) -> Reply:
        if tenant != self.tenant:
            return Reply(400, {"error": "invalid_tenant", "error_description": _no_tenant(tenant)})
        root = f"{base}/{tenant}"
        return Reply(
            200,
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "tenant_region_scope": "EU",
            },
        )

    def client_credentials(self, tenant: str, form_body: bytes) -> Reply:
        form = {k: v[0] for k, v in parse_qs(form_body.decode("ascii", "replace")).items()}
        if tenant != self.tenant:
            return Reply(400, {"error": "invalid_request", "error_description": _no_tenant(tenant)})
        if form.get("grant_type") != "client_credentials":
            return Reply(
                400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003"}
            )
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            description = (
                f"AADSTS700016: Application with identifier '{form.get('client_id', '')}' was "
                f"not found in the directory '{tenant}'."
            )
            return Reply(400, {"error": "unauthorized_client", "error_description": description})
        if not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            description = (
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                f"the request is the client secret value, not the client secret ID, for a secret "
                f"added to app '{app.client_id}'."
            )
            return Reply(401, {"error": "invalid_client", "error_description": description})
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return Reply(400, {"error": "invalid_scope", "error_description": "AADSTS1002012"})
        token, lifetime = self._issue(app, scope[: -len("/.default")])
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
        )

    def managed_identity(self, query: dict[str, str], header: str | None) -> Reply:
        if header is None or not secrets.compare_digest(header, self.identity_header):
            return Reply(401, {"statusCode": 401, "message": "Unauthorized: bad identity header"})
        if query.get("api-version") != "2019-08-01":
            return Reply(400, {"statusCode": 400, "message": "unsupported api-version"})
        client_id = query.get("client_id", "")
        identity = self.managed.get(client_id) if client_id else self.system_identity
        if identity is None:
            message = f"No managed identity found for client_id '{client_id}'"
            return Reply(400, {"statusCode": 400, "message": message})
        resource = query.get("resource", "")
        if resource.endswith("/.default"):
            resource = resource[: -len("/.default")]
        token, lifetime = self._issue(identity, resource)
        return Reply(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            },
        )


def _no_tenant(tenant: str) -> str:
    return (
        f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud."
    )
