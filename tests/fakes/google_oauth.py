"""Google's side of authentication for the fakes: service-account JWTs and the token endpoint.

Nothing is signed here; everything the client signs is checked. A bearer token is either a
self-signed service-account JWT (Google AIP-4111, what google-auth sends for service-account
credentials: RS256, ``kid`` = private key id, ``iss`` = ``sub`` = client email, ``exp``, and the
API audience or a scope) or an access token from the token endpoint (the OAuth 2.0 JWT-bearer
grant of RFC 7523, whose assertion is checked: signature against the registered public key,
``iss``, ``aud`` = a token URI Google documents, ``scope``, ``iat``/``exp``). Tokens really
expire, and ``expire_tokens()`` makes every token issued so far invalid.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_LIFETIME = 3600
# What Google's token endpoint accepts as an assertion's audience (google-auth sends the first).
TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
)


class AuthError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GoogleAuth:
    def __init__(self, token_uri: str, api_audience: str) -> None:
        self.token_uri = token_uri
        self.api_audience = api_audience
        self.accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # kid -> (email, key)
        self.access_tokens: dict[str, tuple[float, float]] = {}  # token -> (issued, expiry)
        self.not_before = 0  # tokens issued before this second are expired
        self.token_grants = 0
        self._lock = threading.RLock()

    def add_service_account(self, email: str, key_id: str, public_key: rsa.RSAPublicKey) -> None:
        with self._lock:
            self.accounts[key_id] = (email, public_key)

    def expire_tokens(self) -> None:
        """Every token issued so far (self-signed or granted) is expired from now on."""
        with self._lock:
            self.not_before = int(time.time()) + 1

    def verify_jwt(self, token: str) -> dict[str, Any]:
        """Check an RS256 JWT's signature against a registered key; return its claims."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(claims_b64))
            signature = _b64url(signature_b64)
        except ValueError:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT.") from None
        account = self.accounts.get(header.get("kid", ""))
        if header.get("alg") != "RS256" or account is None:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT: unknown key.")
        email, public_key = account
        try:
            public_key.verify(
                signature,
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT Signature.") from None
        now = time.time()
        iat, exp = claims.get("iat", 0), claims.get("exp", 0)
        if claims.get("iss") != email:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT: iss is not the key's account.")
        if not (iat - 60 <= now < exp) or exp - iat > TOKEN_LIFETIME:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT: token expired or not yet valid.")
        if iat < self.not_before:
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT: token expired.")
        return claims

    def authenticate(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            raise AuthError(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        with self._lock:
            granted = self.access_tokens.get(token)
            if granted is not None:
                issued, expiry = granted
                if time.time() >= expiry or issued < self.not_before:
                    raise AuthError(401, "UNAUTHENTICATED", "Request had invalid credentials.")
                return
            claims = self.verify_jwt(token)
        if claims.get("sub") != claims.get("iss"):
            raise AuthError(401, "UNAUTHENTICATED", "Invalid JWT: sub must be the account.")
        if claims.get("aud") != self.api_audience and CLOUD_PLATFORM not in str(
            claims.get("scope", "")
        ).split(" "):
            raise AuthError(403, "PERMISSION_DENIED", "Request had insufficient scopes.")

    def grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The OAuth 2.0 JWT-bearer grant (RFC 7523) as Google's token endpoint answers it."""
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type", "error_description": "Bad grant."}
        try:
            with self._lock:
                claims = self.verify_jwt(form.get("assertion", [""])[0])
        except AuthError as err:
            return 400, {"error": "invalid_grant", "error_description": err.message}
        if claims.get("aud") not in (*TOKEN_AUDIENCES, self.token_uri):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT audience."}
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split(" "):
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[token] = (time.time(), time.time() + TOKEN_LIFETIME)
            self.token_grants += 1
        return 200, {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
