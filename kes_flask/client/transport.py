"""HTTPS transport with kms-go's retry and failover behaviour (minio.md §2.3).

* Per request: a network error or a 503 is retried at most twice, 200 to 1000 ms apart.
* Over several endpoints: a loopback endpoint is tried first, otherwise a random one; an endpoint
  that fails (network error, or a 5xx other than 501) is benched for 30 s and the request moves on
  to the next one. 4xx and 501 answers are final. When every endpoint is benched, one more round
  ignores the bench.
* Keep-alive: one persistent HTTP/1.1 connection per endpoint and thread. Request bodies go out
  chunked, as the Go client sends them (api.md §1.7).
"""

from __future__ import annotations

import http.client
import os
import random
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from kes_flask.client.errors import KesConnectionError, KesTLSError

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
USER_AGENT = "kes-flask-client"
BENCH_SECONDS = 30.0
RETRY_DELAY = (0.2, 1.0)  # seconds: 200 ms + random(0…800) ms
MAX_RETRIES = 2


def normalize_endpoint(text: str) -> str:
    """``host:port``, ``http://…`` and ``https://…`` all mean HTTPS (cli.md §1.7)."""
    endpoint = text.strip()
    if endpoint.startswith("http://"):
        endpoint = endpoint[len("http://") :]
    if not endpoint.startswith("https://"):
        endpoint = "https://" + endpoint
    if not urlsplit(endpoint).hostname:
        raise ValueError(f"invalid server endpoint '{text}': no host")
    return endpoint.rstrip("/")


def split_endpoints(text: str) -> list[str]:
    """A comma-separated endpoint list, as in ``KES_SERVER=a:7373,b:7373``."""
    return [normalize_endpoint(part) for part in text.split(",")]


def tls_context(
    certificate_chain_pem: bytes | None, ca_file: str | None, insecure: bool
) -> ssl.SSLContext:
    """TLS ≥ 1.2, HTTP/1.1 only; the client certificate is sent whenever the server asks."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(ca_file)
    else:
        context.load_default_certs()  # honours SSL_CERT_FILE / SSL_CERT_DIR
    if certificate_chain_pem is not None:
        # ssl loads certificates only from files: a 0600 file in a private directory, removed
        with tempfile.TemporaryDirectory(prefix="kes-client-") as directory:
            path = os.path.join(directory, "client.pem")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(certificate_chain_pem)
            context.load_cert_chain(path)
    return context


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    endpoint: str

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")


class Stream:
    """The lines of a streaming response; ends quietly when the server closes it."""

    def __init__(self, answer: http.client.HTTPResponse, conn: http.client.HTTPSConnection) -> None:
        self.answer, self.conn = answer, conn

    def lines(self) -> Iterator[bytes]:
        try:
            yield from self.answer
        except (http.client.IncompleteRead, ssl.SSLEOFError, ConnectionResetError):
            return  # the server went away (shutdown): the stream is over

    def close(self) -> None:
        self.conn.close()


class _NetworkError(Exception):
    """An attempt failed below HTTP; ``text`` is the cause in the Go client's words."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _cause(err: BaseException, host: str, port: int, connecting: bool) -> str:
    if isinstance(err, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return "EOF"
    if isinstance(err, TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout" if connecting else "i/o timeout"
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror[:1].lower() + err.strerror[1:]
        return f"dial tcp {host}:{port}: connect: {reason}" if connecting else reason
    return str(err) or type(err).__name__


class Transport:
    """Sends requests to one or several endpoints; thread-safe."""

    def __init__(
        self,
        endpoints: Sequence[str],
        context: ssl.SSLContext,
        timeout: float | None = 30.0,
        retry_delay: tuple[float, float] = RETRY_DELAY,
        bench_seconds: float = BENCH_SECONDS,
    ) -> None:
        if not endpoints:
            raise ValueError("no server endpoint")
        self.endpoints = [normalize_endpoint(e) for e in endpoints]
        # loopback endpoints first, as kms-go sorts them
        self.endpoints.sort(key=lambda e: urlsplit(e).hostname not in LOOPBACK_HOSTS)
        self.context = context
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.bench_seconds = bench_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        self._benched: dict[str, float] = {}  # endpoint → monotonic time the bench ends

    # --- connections -------------------------------------------------------------------------

    def new_connection(self, endpoint: str, timeout: float | None) -> http.client.HTTPSConnection:
        url = urlsplit(endpoint)
        return http.client.HTTPSConnection(
            url.hostname or "", url.port or 443, context=self.context, timeout=timeout
        )

    def _pool(self) -> dict[str, http.client.HTTPSConnection]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def close(self) -> None:
        """Close this thread's kept-alive connections."""
        for conn in self._pool().values():
            conn.close()
        self._pool().clear()

    # --- load balancing ------------------------------------------------------------------------

    def _is_benched(self, endpoint: str) -> bool:
        with self._lock:
            until = self._benched.get(endpoint)
            if until is None:
                return False
            if time.monotonic() >= until:  # one request probes it again
                self._benched[endpoint] = time.monotonic() + self.bench_seconds
                return False
            return True

    def _bench(self, endpoint: str) -> None:
        with self._lock:
            self._benched[endpoint] = time.monotonic() + self.bench_seconds

    def _unbench(self, endpoint: str) -> None:
        with self._lock:
            self._benched.pop(endpoint, None)

    def _candidates(self) -> Iterator[str]:
        if len(self.endpoints) == 1:
            yield self.endpoints[0]
            return
        tried: set[str] = set()
        first = self.endpoints[0]
        if urlsplit(first).hostname in LOOPBACK_HOSTS and not self._is_benched(first):
            tried.add(first)
            yield first
        start = random.randrange(len(self.endpoints))  # noqa: S311 - load spreading, not crypto
        for i in range(len(self.endpoints)):
            endpoint = self.endpoints[(start + i) % len(self.endpoints)]
            if endpoint not in tried and not self._is_benched(endpoint):
                tried.add(endpoint)
                yield endpoint
        if not tried:  # every endpoint is benched: one round ignoring the bench
            yield from self.endpoints

    def _over_endpoints(
        self, method: str, path: str, attempt: Callable[[str], Response]
    ) -> Response:
        last_response: Response | None = None
        last_error: _NetworkError | None = None
        last_endpoint = ""
        for endpoint in self._candidates():
            last_endpoint = endpoint
            try:
                response = self._with_retries(endpoint, attempt)
            except _NetworkError as err:
                self._bench(endpoint)
                last_error, last_response = err, None
                continue
            if response.status >= 500 and response.status != 501 and len(self.endpoints) > 1:
                self._bench(endpoint)
                last_response, last_error = response, None
                continue
            self._unbench(endpoint)
            return response
        if last_response is not None:
            return last_response
        assert last_error is not None
        url = f"{last_endpoint}{path}"
        raise KesConnectionError(
            f'kes: connection error: {method.capitalize()} "{url}": {last_error.text}'
        )

    def _with_retries(self, endpoint: str, attempt: Callable[[str], Response]) -> Response:
        for retry in range(MAX_RETRIES + 1):
            try:
                response = attempt(endpoint)
            except _NetworkError:
                if retry == MAX_RETRIES:
                    raise
            else:
                if response.status != 503 or retry == MAX_RETRIES:
                    return response
            low, high = self.retry_delay
            time.sleep(random.uniform(low, high))  # noqa: S311
        raise AssertionError("unreachable")

    # --- requests ------------------------------------------------------------------------------

    def _connected(
        self, method: str, endpoint: str, path: str, conn: http.client.HTTPSConnection
    ) -> None:
        """Open the connection (TCP + TLS) unless it is already open."""
        if conn.sock is not None:
            return
        url = urlsplit(endpoint)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as err:
            conn.close()
            reason = err.verify_message or err.reason or str(err)
            raise KesTLSError(
                f'{method.capitalize()} "{endpoint}{path}": '
                f"tls: failed to verify certificate: {reason}"
            ) from None
        except ssl.SSLError as err:
            conn.close()
            if isinstance(err, ssl.SSLEOFError | ssl.SSLZeroReturnError):
                raise _NetworkError("EOF") from None
            raise KesTLSError(
                f'{method.capitalize()} "{endpoint}{path}": tls: {err.reason or err}'
            ) from None
        except OSError as err:
            conn.close()
            raise _NetworkError(_cause(err, url.hostname or "", url.port or 443, True)) from None

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One API call, retried and failed over like kms-go; the whole answer is read."""
        request_headers = {"User-Agent": USER_AGENT, **(headers or {})}

        def attempt(endpoint: str) -> Response:
            pool = self._pool()
            for fresh in (False, True):
                conn = pool.get(endpoint)
                reused = conn is not None and conn.sock is not None and not fresh
                if conn is None or fresh:
                    if conn is not None:
                        conn.close()
                    conn = pool[endpoint] = self.new_connection(endpoint, self.timeout)
                self._connected(method, endpoint, path, conn)
                try:
                    if body is not None:
                        conn.request(
                            method, path, iter([body]), request_headers, encode_chunked=True
                        )
                    else:
                        conn.request(method, path, headers=request_headers)
                    answer = conn.getresponse()
                    payload = answer.read()
                except (OSError, http.client.HTTPException) as err:
                    conn.close()
                    if reused:  # the server closed a kept-alive connection: a new one, at once
                        continue
                    url = urlsplit(endpoint)
                    raise _NetworkError(
                        _cause(err, url.hostname or "", url.port or 443, False)
                    ) from None
                if answer.will_close:
                    conn.close()
                return Response(answer.status, dict(answer.getheaders()), payload, endpoint)
            raise AssertionError("unreachable")

        return self._over_endpoints(method, path, attempt)

    def open_stream(self, method: str, path: str) -> tuple[Response, Stream | None]:
        """A long-lived response (the log streams) on its own connection, without read timeout.

        Returns the head (``Response``; its body is the error text for an error status) and,
        unless the status is an error, the open stream.
        """
        opened: dict[str, tuple[http.client.HTTPResponse, http.client.HTTPSConnection]] = {}

        def attempt(endpoint: str) -> Response:
            conn = self.new_connection(endpoint, self.timeout)
            self._connected(method, endpoint, path, conn)
            try:
                conn.request(method, path, headers={"User-Agent": USER_AGENT})
                answer = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                url = urlsplit(endpoint)
                raise _NetworkError(
                    _cause(err, url.hostname or "", url.port or 443, False)
                ) from None
            if answer.status >= 400:
                payload = answer.read()
                conn.close()
                return Response(answer.status, dict(answer.getheaders()), payload, endpoint)
            if conn.sock is not None:
                conn.sock.settimeout(None)  # events may be minutes apart
            opened[endpoint] = (answer, conn)
            return Response(answer.status, dict(answer.getheaders()), b"", endpoint)

        head = self._over_endpoints(method, path, attempt)
        if head.endpoint not in opened:
            return head, None  # an error answer
        answer, conn = opened[head.endpoint]
        return head, Stream(answer, conn)
