"""An HTTPS forwarding proxy that injects faults: throttling answers, or a dead service.

It sits between a keystore client and a real server (moto) so retries and outages are exercised
over real sockets with the clients unpatched.
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.fakes.tls import ServerTLS


class FaultProxy:
    def __init__(self, upstream: str, tls: ServerTLS) -> None:
        self.upstream = upstream
        self.tls = tls
        self.faults: deque[tuple[int, bytes, dict[str, str]]] = deque()
        self.requests: list[tuple[str, str, int]] = []  # (method, X-Amz-Target or path, status)
        self.down = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def fail_next(self, count: int, status: int, body: bytes, headers: dict[str, str]) -> None:
        with self._lock:
            self.faults.extend([(status, body, headers)] * count)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                label = self.headers.get("X-Amz-Target") or self.path
                if proxy.down:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                with proxy._lock:
                    fault = proxy.faults.popleft() if proxy.faults else None
                if fault is not None:
                    status, payload, headers = fault
                    proxy.requests.append((self.command, label, status))
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                answer = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers=headers,
                    verify=proxy.tls.ca,
                    timeout=30,
                )
                proxy.requests.append((self.command, label, answer.status_code))
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in {"content-length", "connection", "content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        return Handler
