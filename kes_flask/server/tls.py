"""Server-side TLS: request a client certificate, accept it unverified, identify the peer.

Go KES's default client-auth mode ("require any certificate, verify nothing", api.md §6.5)
cannot be expressed with the stdlib ``ssl`` module alone: ``CERT_REQUIRED``/``CERT_OPTIONAL``
always verify the chain, and KES clients present self-signed certificates. As measured in
shared/spikes/mtls.md, we install an accept-all verify callback on the context's ``SSL_CTX``
through libssl's own ``SSL_CTX_set_verify`` (resolved from the ``_ssl`` extension itself, never
a second libssl). With ``tls.auth: on`` OpenSSL verifies normally against ``tls.ca`` plus the
system roots and no callback is installed.
"""

from __future__ import annotations

import _ssl
import ctypes
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable

from cryptography import x509

from kes_flask.auth.identity import certificate_identity, is_ca_certificate
from kes_flask.auth.peer import ANONYMOUS_PEER, Peer
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import TLSConfig

log = logging.getLogger("kes_flask.tls")

# TLS 1.2 suites: ECDHE key exchange with AEAD ciphers only (Decision Q12). TLS 1.3 suites are
# all AEAD and stay at OpenSSL's defaults.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
HANDSHAKE_TIMEOUT = 10.0
RELOAD_INTERVAL = 15 * 60.0

_VERIFY_PEER = 0x01
_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class _LibSSL:
    """The libssl functions we need, from the library CPython's ``_ssl`` is linked against."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(_ssl.__file__)
        self.set_verify = lib.SSL_CTX_set_verify
        self.set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
        self.set_verify.restype = None
        self.get_verify_mode = lib.SSL_CTX_get_verify_mode
        self.get_verify_mode.argtypes = [ctypes.c_void_p]
        self.get_verify_mode.restype = ctypes.c_int
        # Kept referenced for the life of the process: libssl calls it on every handshake.
        self.accept_any = _VerifyCallback(lambda _preverify_ok, _store: 1)


_libssl: _LibSSL | None = None
_libssl_lock = threading.Lock()


def _load_libssl() -> _LibSSL:
    global _libssl
    with _libssl_lock:
        if _libssl is None:
            _libssl = _LibSSL()
        return _libssl


def accept_unverified_client_certificates(context: ssl.SSLContext) -> None:
    """Install the accept-all verify callback; refuse if the ``SSL_CTX`` cannot be found safely."""
    try:
        lib = _load_libssl()
    except (OSError, AttributeError) as err:
        raise ConfigError(
            f"TLS: cannot access libssl to accept self-signed client certificates: {err}"
        ) from None
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    expected = _VERIFY_PEER | (
        _VERIFY_FAIL_IF_NO_PEER_CERT if context.verify_mode == ssl.CERT_REQUIRED else 0
    )
    if not pointer or lib.get_verify_mode(pointer) != expected:
        raise ConfigError(
            "TLS: unsupported Python SSL build: cannot install the client certificate callback"
        )
    lib.set_verify(pointer, expected, lib.accept_any)


class KesSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` that remembers its peer's KES identity for the connection's lifetime."""

    def kes_peer(self) -> Peer:
        peer = self.__dict__.get("_kes_peer")
        if peer is None:
            peer = self.__dict__["_kes_peer"] = peer_of_certificate(
                self.getpeercert(binary_form=True)
            )
        return peer


def peer_of_certificate(der: bytes | None) -> Peer:
    """CA certificates never identify a client (api.md §6.1); stdlib gives us only the leaf."""
    if not der:
        return ANONYMOUS_PEER
    try:
        if is_ca_certificate(der):
            return ANONYMOUS_PEER
        return Peer(certificate_identity(der))
    except ValueError:
        return ANONYMOUS_PEER


class KesSSLContext(ssl.SSLContext):
    """Bounds a blocking handshake in time; the event-loop worker uses ``wrap_nonblocking``."""

    sslsocket_class = KesSSLSocket
    handshake_timeout = HANDSHAKE_TIMEOUT

    def wrap_socket(  # type: ignore[override]
        self,
        sock: socket.socket,
        server_side: bool = True,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        try:
            host, port = sock.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "unknown"
        sock.settimeout(self.handshake_timeout)
        try:
            tls_sock = super().wrap_socket(
                sock,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=suppress_ragged_eofs,
            )
            tls_sock.do_handshake()
        except (OSError, ValueError) as err:
            # Logged here once; gunicorn then closes quietly instead of writing a plaintext
            # error page into a connection that never became TLS.
            log_handshake_error(peer, err)
            sock.close()
            raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "TLS handshake failed") from None
        tls_sock.settimeout(None)
        return tls_sock

    def wrap_nonblocking(self, sock: socket.socket) -> KesSSLSocket:
        """Wrap without a handshake, for an event loop that drives it (non-blocking)."""
        sock.setblocking(False)
        return ssl.SSLContext.wrap_socket(  # type: ignore[return-value]
            self, sock, server_side=True, do_handshake_on_connect=False
        )


def log_handshake_error(peer: str, err: Exception) -> None:
    """Go's wording, which operators grep for; logged once per failed connection."""
    log.info("http: TLS handshake error from %s: %s", peer, _reason(err))


def _reason(err: Exception) -> str:
    if isinstance(err, ssl.SSLError) and err.reason:
        return err.reason.lower().replace("_", " ")
    if isinstance(err, TimeoutError | socket.timeout):
        return "handshake timeout"
    return str(err) or type(err).__name__


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise ConfigError(
            f"failed to read TLS {what}: open {path}: {err.strerror.lower()}"
        ) from None


def _check_server_certificate(cert_path: str) -> None:
    data = _read(cert_path, "certificate")
    try:
        leaf = x509.load_pem_x509_certificate(data)
    except ValueError as err:
        raise ConfigError(f"failed to read TLS certificate: {cert_path}: {err}") from None
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    if not sans or not (
        sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)
    ):
        raise ConfigError(
            "invalid TLS certificate: certificate does not contain any DNS or IP address as SAN"
        )


def _load_client_cas(context: ssl.SSLContext, ca: str) -> None:
    context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    if not ca:
        return
    files = [ca]
    if os.path.isdir(ca):
        files = sorted(
            os.path.join(ca, n) for n in os.listdir(ca) if os.path.isfile(os.path.join(ca, n))
        )
    for path in files:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"failed to read TLS CA certificates: '{path}': {err}") from None


def build_server_context(tls: TLSConfig, optional_client_certificate: bool) -> KesSSLContext:
    """A server context for ``tls``; raises ``ConfigError`` naming the file and the problem."""
    _check_server_certificate(tls.cert)
    key_data = _read(tls.key, "private key")
    if b"ENCRYPTED" in key_data and not tls.password:
        raise ConfigError("https: private key is encrypted: password required")
    context = KesSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(["http/1.1"])  # never h2: gunicorn serves HTTP/1.1 here
    password = tls.password.encode()
    try:
        context.load_cert_chain(tls.cert, tls.key, password=lambda: password)
    except ssl.SSLError as err:
        raise ConfigError(
            f"failed to load TLS certificate and private key: {_reason(err)}"
        ) from None
    context.verify_mode = ssl.CERT_OPTIONAL if optional_client_certificate else ssl.CERT_REQUIRED
    if tls.auth == "on":
        _load_client_cas(context, tls.ca)
    else:
        accept_unverified_client_certificates(context)
    return context


class TLSContextProvider:
    """gunicorn's ``ssl_context`` hook: one context, rebuilt when its files change (15 min)."""

    def __init__(
        self,
        tls: TLSConfig,
        optional_client_certificate: bool,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        reload_interval: float = RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tls = tls
        self.optional = optional_client_certificate
        self.handshake_timeout = handshake_timeout
        self.reload_interval = reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._context = self._build()
        self._stamp = self._files_stamp()
        self._next_check = clock() + reload_interval

    def _build(self) -> KesSSLContext:
        context = build_server_context(self.tls, self.optional)
        context.handshake_timeout = self.handshake_timeout
        return context

    def _files_stamp(self) -> tuple:
        stamp = []
        for path in (self.tls.cert, self.tls.key, self.tls.ca):
            try:
                info = os.stat(path) if path else None
                stamp.append((info.st_mtime_ns, info.st_size, info.st_ino) if info else None)
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def __call__(self, _conf: object = None, _default_factory: object = None) -> KesSSLContext:
        if self._clock() >= self._next_check:
            self._maybe_reload()
        return self._context

    def _maybe_reload(self) -> None:
        with self._lock:
            if self._clock() < self._next_check:
                return
            self._next_check = self._clock() + self.reload_interval
            stamp = self._files_stamp()
            if stamp == self._stamp:
                return
            try:
                self._context = self._build()
            except ConfigError as err:
                log.error("Failed to reload TLS configuration: %s", err)
                return
            self._stamp = stamp
            log.info("TLS certificate reloaded")
