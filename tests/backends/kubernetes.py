"""A loopback HTTPS stand-in for the Kubernetes API's TokenReview, and service account JWTs.

OpenBao's kubernetes auth plugin (the real one) validates a login by POSTing the JWT to
``/apis/authentication.k8s.io/v1/tokenreviews``. This server answers that one call for the JWTs
it was told are valid, like the API server does for live service account tokens; it stands in
for Kubernetes, never for Vault.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kes_flask.auth.certs import certificate_pem, private_key_pem
from tests.certificates import make_certificate

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ServiceAccount:
    """A service account whose RS256-signed legacy tokens the fake API server accepts."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.uid = str(uuid.uuid4())
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def token(self) -> str:
        header = {"alg": "RS256", "kid": "test", "typ": "JWT"}
        claims = {
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": self.namespace,
            "kubernetes.io/serviceaccount/secret.name": f"{self.name}-token",
            "kubernetes.io/serviceaccount/service-account.name": self.name,
            "kubernetes.io/serviceaccount/service-account.uid": self.uid,
            "sub": self.username,
            "jti": str(uuid.uuid4()),
            "iat": int(time.time()),
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


class TokenReviewServer:
    def __init__(self, directory: Path) -> None:
        ca_key, ca = make_certificate("fake kubernetes CA", ca=True, days=30)
        key, cert = make_certificate("kubernetes", issuer=(ca, ca_key), ips=["127.0.0.1"], days=30)
        (directory / "k8s.pem").write_bytes(certificate_pem(cert) + certificate_pem(ca))
        (directory / "k8s.key").write_bytes(private_key_pem(key))
        self.ca_pem = certificate_pem(ca).decode()
        self.valid: dict[str, ServiceAccount] = {}
        self.reviewed: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(length) or b"{}")
                token = (review.get("spec") or {}).get("token", "")
                with server._lock:
                    server.reviewed.append(token)
                    account = server.valid.get(token)
                status: dict = {"authenticated": False, "error": "token is not valid"}
                if self.path == REVIEW_PATH and account is not None:
                    status = {
                        "authenticated": True,
                        "user": {
                            "username": account.username,
                            "uid": account.uid,
                            "groups": ["system:serviceaccounts"],
                        },
                    }
                body = json.dumps(
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "status": status,
                    }
                ).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "k8s.pem", directory / "k8s.key")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def accept(self, account: ServiceAccount, token: str) -> None:
        with self._lock:
            self.valid[token] = account

    def revoke(self, token: str) -> None:
        with self._lock:
            self.valid.pop(token, None)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
