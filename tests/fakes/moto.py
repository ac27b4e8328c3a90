"""A real moto server process (``moto_server``) over HTTPS on a free port, started by the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fakes.tls import ServerTLS
from tests.kes_server import free_port

START_TIMEOUT = 60.0


class MotoServer:
    def __init__(self, directory: Path, plain_http: bool = False) -> None:
        """``plain_http`` only for a peer that cannot be told to trust a test CA (Go KES)."""
        self.plain_http = plain_http
        self.tls = ServerTLS.create(directory / "tls")
        self.log_path = directory / "moto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        scheme = "http" if self.plain_http else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        for _ in range(5):  # a free port can be taken between probe and bind: try another
            self.port = free_port()
            moto_server = str(Path(sys.executable).with_name("moto_server"))
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [
                        *(moto_server, "-H", "127.0.0.1", "-p", str(self.port)),
                        *(() if self.plain_http else ("--ssl-cert", self.tls.cert)),
                        *(() if self.plain_http else ("--ssl-key", self.tls.key)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_up():
                return self
            self.stop()
        raise RuntimeError(f"moto_server did not start: {self.log_path.read_text()[-2000:]}")

    def _wait_up(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                requests.get(f"{self.endpoint}/moto-api/", verify=self.tls.ca, timeout=5)
                return True
            except requests.RequestException:
                time.sleep(0.1)
        return False

    def reset(self) -> None:
        """Forget every secret (moto's documented reset endpoint)."""
        requests.post(f"{self.endpoint}/moto-api/reset", verify=self.tls.ca, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
