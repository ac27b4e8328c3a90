"""Vault login (AppRole or Kubernetes) and the token renewal loop (keystores.md §3.5, §3.6).

The current token lives in ``TokenKeeper``; data requests read it once per request, so a
swap never mixes two tokens in one request. The renewal loop runs in one background thread
per worker process: it is started only by ``start()`` (after fork), never by connecting, so the
gunicorn master can log in once at start-up without leaving a thread behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from kes_flask.config.model import VaultKeystoreConfig
from kes_flask.keystore.base import KeystoreError
from kes_flask.keystore.vault.transport import Transport, describe_transport_error

log = logging.getLogger("kes_flask.keystore")

RETRY = 3  # renewal attempts before falling back to a new login
MAX_DELAY = 30.0  # seconds between obtaining a token and using it (replication lag bound)
SHORT_TTL = 30.0  # below this a token is not renewed but replaced by a new login
RELOGIN_PAUSE = 3.0
SEALED_PAUSE = 1.0
FORCED_RELOGIN_SPACING = 2.0  # a token a forced re-login produced is not replaced sooner


def name_os_thread(name: str) -> None:
    """Show the calling thread as ``name`` in ``top -H`` and /proc (Linux; else nothing)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class LoginError(KeystoreError):
    """Vault refused the credentials (or did not answer): start-up must stop."""


@dataclass(frozen=True)
class Session:
    token: str
    ttl: float  # seconds; 0 = never expires
    renewable: bool
    obtained: float  # monotonic time of the login / renewal


class Login:
    """Builds and sends the configured login request."""

    def __init__(self, config: VaultKeystoreConfig, transport: Transport) -> None:
        self.transport = transport
        if config.approle is not None:
            method = config.approle
            self.engine = method.engine.strip("/")
            self.namespace = method.namespace or config.namespace
            self._body: Callable[[], dict[str, str]] = lambda: {
                "role_id": method.id,
                "secret_id": method.secret,
            }
        elif config.kubernetes is not None:
            kubernetes = config.kubernetes
            self.engine = kubernetes.engine.strip("/")
            self.namespace = kubernetes.namespace or config.namespace
            self._body = lambda: {"role": kubernetes.role, "jwt": _jwt(kubernetes.jwt)}
        else:  # the config layer guarantees one method; keep the failure clear anyway
            raise LoginError("vault: no authentication method specified")
        self.path = f"/v1/auth/{self.engine}/login"

    def __call__(self) -> Session:
        where = f"auth/{self.engine}/login"
        if self.namespace not in ("", "/"):
            where += f" in namespace '{self.namespace}'"
        try:
            reply = self.transport.request(
                "POST", self.path, namespace=self.namespace, body=self._body()
            )
        except requests.RequestException as err:
            raise LoginError(
                f"vault: authentication failed at {where}: {describe_transport_error(err)}"
            ) from None
        if not reply.ok:
            raise LoginError(f"vault: authentication failed at {where}: {reply.reason()}")
        auth = (reply.body or {}).get("auth") or {}
        token = auth.get("client_token")
        if not isinstance(token, str) or not token:
            raise LoginError(
                "vault: authentication failed: Vault answered without an error but also "
                f"without a token ({where})"
            )
        ttl = auth.get("lease_duration") or ((reply.body or {}).get("data") or {}).get("ttl") or 0
        return Session(token, float(ttl), bool(auth.get("renewable")), time.monotonic())


def _jwt(value: str) -> str:
    """A JWT containing a path separator names a file: read it anew at every login."""
    if "/" not in value:
        return value
    try:
        with open(value, encoding="utf-8") as file:
            return file.read()
    except OSError as err:
        raise LoginError(
            f"vault: cannot read the Kubernetes service account token '{value}': "
            f"{err.strerror or err}"
        ) from None


class TokenKeeper:
    """The current token, its renewal loop, and re-login when Vault rejects the token."""

    def __init__(
        self,
        login: Login,
        transport: Transport,
        namespace: str,
        sealed: Callable[[], bool],
        stop: threading.Event,
        short_ttl: float = SHORT_TTL,
        required: bool = True,
    ) -> None:
        """``required``: a refused first login raises (start-up, reload). Otherwise (a worker
        booting while Vault is down) the failure is logged and the loop keeps logging in."""
        self._login = login
        self._short_ttl = short_ttl  # tests lower it to see renewals within seconds
        self._transport = transport
        self._namespace = namespace
        self._sealed = sealed
        self._stop = stop
        self._lock = threading.Lock()
        self.logins = self.renewals = 0  # counted for tests and diagnostics
        self.login_error = ""
        try:
            self._session = login()
        except LoginError as err:
            if required:
                raise
            log.error("%s (retrying every %gs)", err, RELOGIN_PAUSE)
            self.login_error = str(err)
            self._session = Session("", 0.0, False, time.monotonic())
        self._forced: Session | None = None  # the last session a rejected token forced
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        token = self._session.token
        if not token:
            raise KeystoreError(f"vault: not logged in yet: {self.login_error}")
        return token

    def start(self) -> None:
        """Start the renewal loop (once), in the process that serves requests."""
        if self._thread is None and (self._session.ttl > 0 or not self._session.token):
            self._thread = threading.Thread(
                target=self._renew_loop, name="kes-vault-token", daemon=True
            )
            self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def relogin_if_current(self, rejected: str) -> bool:
        """Vault rejected ``rejected``: log in again unless someone already did (or just did).

        Returns whether the current token differs from ``rejected`` afterwards.
        """
        with self._lock:
            current = self._session
            if current.token != rejected:
                return True
            if current is self._forced and time.monotonic() - current.obtained < (
                FORCED_RELOGIN_SPACING
            ):
                return False  # the token we just got is "rejected" too: do not loop on logins
            try:
                self._session = self._forced = self._login()
            except LoginError as err:
                log.error("%s", err)
                return False
            log.warning(
                "vault: the token was rejected by Vault (revoked or expired): logged in again"
            )
            return True

    def token_valid(self, token: str) -> bool | None:
        """Ask Vault whether ``token`` is still valid (None when Vault cannot tell us)."""
        try:
            reply = self._transport.request(
                "GET", "/v1/auth/token/lookup-self", token=token, namespace=self._namespace
            )
        except requests.RequestException:
            return None
        if reply.ok:
            return True
        return False if reply.status in (401, 403) else None

    # --- the renewal loop (keystores.md §3.6) --------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep; True when the keystore is closing."""
        return self._stop.wait(max(0.0, seconds))

    def _renew_loop(self) -> None:
        name_os_thread("kes-vault-token")
        ttl = self._session.ttl
        while not self._stop.is_set():
            if self._sealed():
                if self._wait(SEALED_PAUSE):
                    return
                continue
            if ttl < self._short_ttl:
                new = self._try_login()
                if new is not None:
                    ttl = new.ttl
                    with self._lock:
                        self._session = new
                    if ttl == 0:
                        return  # a token that never expires needs no renewal
                if self._wait(RELOGIN_PAUSE):
                    return
                continue
            renew_in = 0.8 * ttl
            delay = min((ttl - renew_in) / 2, MAX_DELAY)
            ttl = 0
            if self._wait(renew_in):
                return
            base = self._session
            new = self._renew() if base.renewable else None
            if new is None:
                new = self._try_login()
            if new is None:
                continue  # ttl == 0: the next round logs in again every few seconds
            ttl = new.ttl
            if self._wait(delay):
                return
            with self._lock:
                if self._session is base:  # unless a forced re-login replaced it meanwhile
                    self._session = new
            if ttl == 0:
                return

    def _try_login(self) -> Session | None:
        try:
            session = self._login()
        except LoginError as err:
            log.error("%s (retrying in %gs)", err, RELOGIN_PAUSE)
            self.login_error = str(err)
            return None
        self.logins += 1
        if self.login_error:
            log.info("vault: logged in")
            self.login_error = ""
        return session

    def _renew(self) -> Session | None:
        token = self._session.token
        for _attempt in range(RETRY):
            try:
                reply = self._transport.request(
                    "POST",
                    "/v1/auth/token/renew-self",
                    token=token,
                    namespace=self._namespace,
                    body={"increment": 0},
                )
            except requests.RequestException as err:
                log.warning("vault: token renewal failed: %s", describe_transport_error(err))
                continue
            auth = (reply.body or {}).get("auth") or {}
            if reply.ok and auth.get("client_token"):
                self.renewals += 1
                return Session(
                    auth["client_token"],
                    float(auth.get("lease_duration") or 0),
                    bool(auth.get("renewable")),
                    time.monotonic(),
                )
            log.warning("vault: token renewal failed: %s", reply.reason())
            if 400 <= reply.status < 500:
                break
        return None
