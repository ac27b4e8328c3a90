"""The Vault keystore: K/V v1 or v2 entries at Go KES's paths, optionally transit-encrypted.

Entries are byte-compatible with Go KES (keystores.md §3.2, §3.3): ``{"<name>": "<value>"}`` at
``<engine>/<prefix>/<name>`` (v1) or ``<engine>/data/<prefix>/<name>`` version 1 (v2), where the
value is the encoded key or ``vault:v1:…`` of its base64 under a transit key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import posixpath
import threading
import time

import requests

from kes_flask.config.model import SECOND, VaultKeystoreConfig
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)
from kes_flask.keystore.vault.auth import SHORT_TTL, Login, TokenKeeper, name_os_thread
from kes_flask.keystore.vault.transport import (
    HEALTH_PARAMS,
    HEALTH_PATH,
    Reply,
    Transport,
    describe_transport_error,
)

log = logging.getLogger("kes_flask.keystore")

TRANSIT_PREFIX = "vault:v1:"
CAS_MISMATCH = "check-and-set parameter did not match the current version"


class SealedError(KeystoreError):
    pass


class PermissionDeniedError(KeystoreError):
    pass


def clean(*parts: str) -> str:
    """Join path parts like Go's ``path.Join`` + URL cleaning, without leading/trailing '/'."""
    joined = "/".join(part.strip("/") for part in parts if part.strip("/"))
    if not joined:
        return ""
    return posixpath.normpath("/" + joined).lstrip("/")


class VaultKeystore:
    def __init__(
        self,
        config: VaultKeystoreConfig,
        *,
        login_required: bool = True,
        short_ttl: float = SHORT_TTL,
    ) -> None:
        """Connect and log in. Without ``login_required`` (workers) a refused first login does
        not fail: the renewal loop keeps trying. ``short_ttl`` (tests only) lowers the 30 s
        re-login threshold."""
        if config.version not in ("v1", "v2"):
            raise KeystoreError(f"vault: invalid engine API version '{config.version}'")
        self.config = config
        self.description = f"Hashicorp Vault: {config.endpoint}"
        self.v2 = config.version == "v2"
        self.engine = clean(config.engine)
        self.prefix = clean(config.prefix)
        self.namespace = config.namespace
        self.transit = config.transit
        self.ping = config.status_ping / SECOND
        self._transport = Transport(config.endpoint, config.tls)
        self._stop = threading.Event()
        self._sealed = False
        self._probe: threading.Thread | None = None
        try:
            self._tokens = TokenKeeper(
                Login(config, self._transport),
                self._transport,
                self.namespace,
                lambda: self._sealed,
                self._stop,
                short_ttl,
                login_required,
            )
        except BaseException:
            self._transport.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the token renewal loop and the seal probe (one each per process)."""
        if self._stop.is_set():
            return
        self._tokens.start()
        if self._probe is None:
            self._probe = threading.Thread(
                target=self._probe_loop, name="kes-vault-probe", daemon=True
            )
            self._probe.start()

    def close(self) -> None:
        self._stop.set()
        self._tokens.join(timeout=5)
        if self._probe is not None and self._probe is not threading.current_thread():
            self._probe.join(timeout=5)
        self._transport.close()

    def _probe_loop(self) -> None:
        """Every ``status.ping``: remember whether Vault is sealed (kept on errors)."""
        name_os_thread("kes-vault-probe")
        while True:
            try:
                reply = self._health()
            except requests.RequestException:
                reply = None
            if reply is not None and reply.ok and reply.body is not None:
                sealed = bool(reply.body.get("sealed"))
                if sealed != self._sealed:
                    if sealed:
                        log.error("vault: Vault at %s is sealed", self.config.endpoint)
                    else:
                        log.info("vault: Vault at %s is unsealed again", self.config.endpoint)
                self._sealed = sealed
            if self._stop.wait(self.ping):
                return

    # --- paths -------------------------------------------------------------------------

    def _location(self, name: str) -> str:
        return clean(self.prefix, name)

    def _data_path(self, location: str) -> str:
        return clean(self.engine, "data", location) if self.v2 else clean(self.engine, location)

    def _metadata_path(self, location: str) -> str:
        return clean(self.engine, "metadata", location) if self.v2 else clean(self.engine, location)

    # --- requests ----------------------------------------------------------------------

    def _check_sealed(self) -> None:
        if self._sealed:
            raise SealedError("vault: key store is sealed")

    def _call(
        self,
        method: str,
        path: str,
        capability: str,
        *,
        body: dict | None = None,
        params: dict | None = None,
    ) -> Reply:
        """One data request; a token Vault rejects is replaced once and the request retried."""
        for attempt in (0, 1):
            token = self._tokens.token
            try:
                reply = self._transport.request(
                    method,
                    "/v1/" + path,
                    token=token,
                    namespace=self.namespace,
                    body=body,
                    params=params,
                )
            except requests.RequestException as err:
                raise KeystoreError(
                    f"vault: {_verb(capability)} '{path}' failed: {describe_transport_error(err)}"
                ) from None
            if reply.status != 403 or attempt == 1:
                break
            if token == self._tokens.token:  # nobody has replaced the token meanwhile
                if self._tokens.token_valid(token) is True:
                    break  # the token works: the policy denies this path
                if not self._tokens.relogin_if_current(token):
                    break
        if reply.status == 403:
            raise PermissionDeniedError(
                f"vault: permission denied on {path}: the policy needs '{capability}'"
            )
        return reply

    def _failed(self, what: str, path: str, reply: Reply) -> KeystoreError:
        if reply.status == 503 and any("sealed" in e for e in reply.errors):
            return KeystoreError(f"vault: failed to {what} '{path}': Vault is sealed")
        return KeystoreError(f"vault: failed to {what} '{path}': {reply.reason()}")

    # --- the keystore interface ----------------------------------------------------------

    def create(self, name: str, value: bytes) -> None:
        self._check_sealed()
        path = self._data_path(self._location(name))
        existing = self._call("GET", path, "read")
        if existing.ok or (existing.status == 404 and existing.has_payload):
            self._raise_if_exists(name, path, existing)
        elif existing.status != 404:
            raise self._failed("create", path, existing)
        stored = value.decode("ascii")
        if self.transit is not None:
            stored = self._encrypt(path, value)
        data = {name: stored}
        body = {"options": {"cas": 0}, "data": data} if self.v2 else data
        try:
            reply = self._call("PUT", path, "create", body=body)
        except PermissionDeniedError:
            # Without 'update' in the policy Vault refuses to overwrite an entry another node
            # created since our check (before the v2 CAS check): a lost race, not a failure.
            if self._exists_now(name, path):
                raise KeyExistsError(name) from None
            raise
        if reply.status in (200, 204):
            return
        if self.v2 and reply.status == 400 and any(CAS_MISMATCH in e for e in reply.errors):
            raise KeyExistsError(name)  # another node created it between check and write
        if reply.status >= 400:
            raise self._failed("create", path, reply)
        raise KeystoreError(
            f"vault: failed to create '{path}': unexpected answer HTTP {reply.status}"
        )

    def _exists_now(self, name: str, path: str) -> bool:
        try:
            reply = self._call("GET", path, "read")
        except KeystoreError:
            return False
        data = (reply.body or {}).get("data")
        if self.v2 and isinstance(data, dict):
            data = data.get("data")
        return reply.ok and isinstance(data, dict) and name in data

    def _raise_if_exists(self, name: str, path: str, reply: Reply) -> None:
        data = (reply.body or {}).get("data")
        if not self.v2:
            if isinstance(data, dict) and name in data:
                raise KeyExistsError(name)
            raise KeystoreError(
                f"vault: entry exists but failed to read '{path}': invalid K/V v1 format"
            )
        if not data:
            return  # an empty v2 answer: treat as absent, the cas: 0 write decides
        inner = data.get("data") if isinstance(data, dict) else None
        if inner is None:
            raise KeystoreError(
                f"vault: entry exists but failed to read '{path}': invalid K/V v2 format: "
                "missing 'data' entry (a deleted version? delete the key's metadata in Vault)"
            )
        if not isinstance(inner, dict):
            raise KeystoreError(
                f"vault: entry exists but failed to read '{path}': invalid K/V v2 format: "
                "invalid 'data' entry"
            )
        if name not in inner:
            raise KeystoreError(
                f"vault: failed to read '{path}': entry exists but no secret key is present"
            )
        raise KeyExistsError(name)

    def get(self, name: str) -> bytes:
        self._check_sealed()
        path = self._data_path(self._location(name))
        params = {"version": "1"} if self.v2 else None
        reply = self._call("GET", path, "read", params=params)
        if reply.status == 404 and not reply.has_payload:
            raise KeyNotFoundError(name)
        if not reply.ok and reply.status != 404:
            raise self._failed("read", path, reply)
        data = (reply.body or {}).get("data")
        if self.v2 and isinstance(data, dict):
            data = data.get("data")
        value = data.get(name) if isinstance(data, dict) else None
        if value is None:
            raise KeystoreError(
                f"vault: failed to read '{path}': entry exists but no secret key is present"
            )
        if not isinstance(value, str):
            raise KeystoreError(f"vault: failed to read '{path}': invalid K/V format")
        if value.startswith(TRANSIT_PREFIX):
            return self._decrypt(path, value)
        return value.encode()

    def delete(self, name: str) -> None:
        self._check_sealed()
        path = self._metadata_path(self._location(name))
        reply = self._call("DELETE", path, "delete")
        if not reply.ok:
            raise self._failed("delete", path, reply)

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        self._check_sealed()
        path = self._metadata_path(self.prefix)
        reply = self._call("GET", path, "list", params={"list": "true"})
        if reply.status == 404 and not reply.has_payload:
            return [], ""  # Vault's answer for a folder without entries
        if not reply.ok:
            raise self._failed("list", path, reply)
        if not reply.body:
            return [], ""
        keys = (reply.body.get("data") or {}).get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise KeystoreError(f"vault: failed to list '{path}': invalid key listing format")
        return paginate(keys, prefix, limit)

    def status(self) -> float:
        start = time.perf_counter()
        try:
            reply = self._health()
        except requests.Timeout as err:
            raise KeystoreUnreachableError(f"vault: {describe_transport_error(err)}") from None
        except requests.RequestException as err:
            raise KeystoreError(f"vault: {describe_transport_error(err)}") from None
        latency = time.perf_counter() - start
        if not reply.ok or reply.body is None:
            raise KeystoreError(f"vault: health check failed: {reply.reason()}")
        if reply.body.get("initialized") is False:
            raise KeystoreUnreachableError("vault: not initialized")
        self._sealed = bool(reply.body.get("sealed"))  # fresher than the last ping
        if self._sealed:
            raise KeystoreUnreachableError("vault: key store is sealed")
        return latency

    def _health(self) -> Reply:
        """The health endpoint exists only in the root namespace: sent without the header."""
        return self._transport.request("GET", HEALTH_PATH, params=HEALTH_PARAMS)

    # --- transit (keystores.md §3.9) ------------------------------------------------------

    def _transit_path(self, operation: str) -> str:
        assert self.transit is not None
        return clean(self.transit.engine, operation, self.transit.key)

    def _encrypt(self, path: str, value: bytes) -> str:
        transit = self._transit_path("encrypt")
        plaintext = base64.b64encode(value).decode()
        reply = self._call("POST", transit, "update", body={"plaintext": plaintext})
        if reply.status != 200:
            raise KeystoreError(
                f"vault: failed to create '{path}': failed to encrypt key with {transit}: "
                f"{reply.reason()}"
            )
        ciphertext = ((reply.body or {}).get("data") or {}).get("ciphertext")
        if not isinstance(ciphertext, str):
            raise KeystoreError(
                f"vault: failed to create '{path}': no ciphertext in vault response"
            )
        if not ciphertext.startswith(TRANSIT_PREFIX):
            raise KeystoreError(
                f"vault: failed to create '{path}': the transit key '{self.transit.key}' has "
                "been rotated; Go KES can only read 'vault:v1:' values, so no key is written"
            )
        return ciphertext

    def _decrypt(self, path: str, value: str) -> bytes:
        if self.transit is None:
            raise KeystoreError(
                f"vault: failed to read '{path}': key is encrypted with vault transit key "
                "(configure keystore.vault.transit)"
            )
        transit = self._transit_path("decrypt")
        reply = self._call("POST", transit, "update", body={"ciphertext": value})
        if reply.status != 200:
            raise KeystoreError(
                f"vault: failed to read '{path}': failed to decrypt key with {transit}: "
                f"{reply.reason()}"
            )
        plaintext = ((reply.body or {}).get("data") or {}).get("plaintext")
        try:
            return base64.b64decode(plaintext, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise KeystoreError(
                f"vault: failed to read '{path}': invalid transit plaintext"
            ) from None


def _verb(capability: str) -> str:
    return {"read": "reading", "create": "writing", "delete": "deleting", "list": "listing"}.get(
        capability, "calling"
    )
