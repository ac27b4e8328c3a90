"""Load from bombardier: one run, its JSON result parsed into req/s and latency percentiles.

bombardier (fasthttp client) keeps its connections alive; with ``Connection: close`` it opens a
new TLS connection per request and, having no session cache, does a full handshake each time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BOMBARDIER_MODULE = "github.com/codesenberg/bombardier"
BOMBARDIER_VERSION = "v1.2.6"


def bombardier_dir() -> Path:
    return Path(os.environ.get("KES_FLASK_BENCH_BIN", Path.home() / ".cache" / "kes-flask" / "bin"))


def find_bombardier(go: str | None) -> str | None:
    """bombardier from the cache (installed with ``go install`` once), else from PATH."""
    cached = bombardier_dir() / "bombardier"
    if cached.exists():
        return str(cached)
    if go is not None:
        env = dict(os.environ, GOBIN=str(bombardier_dir()), CGO_ENABLED="0")
        done = subprocess.run(
            [go, "install", f"{BOMBARDIER_MODULE}@{BOMBARDIER_VERSION}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"go install bombardier failed:\n{done.stderr[-3000:]}")
        return str(cached)
    return shutil.which("bombardier")


@dataclass(frozen=True)
class Request:
    """One benchmarked operation: what bombardier sends."""

    name: str
    method: str
    path: str
    body: str = ""
    new_connection: bool = False  # Connection: close, a full TLS handshake per request


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int  # 2xx answers
    errors: int  # everything else, including connection errors
    server_cpu_us: float = 0.0  # the server's CPU time per answered request (µs), from /proc

    @classmethod
    def from_bombardier(cls, output: str) -> LoadResult:
        """Parse ``bombardier -o json -l -p r`` output."""
        result = json.loads(output)["result"]
        ok = int(result["req2xx"])
        failed = sum(int(result[k]) for k in ("req1xx", "req3xx", "req4xx", "req5xx", "others"))
        percentiles = result.get("latency", {}).get("percentiles", {})
        seconds = float(result["timeTakenSeconds"]) or 1.0
        return cls(
            rps=ok / seconds,
            p50_ms=percentiles.get("50", 0) / 1000,
            p99_ms=percentiles.get("99", 0) / 1000,
            requests=ok,
            errors=failed,
        )


@dataclass
class Bombardier:
    binary: str
    cert: str
    key: str
    cpus: str | None = None  # taskset CPU list for the load generator
    connections: int = 16
    timeout: float = 10.0

    def command(
        self,
        url: str,
        request: Request,
        seconds: float | None = None,
        count: int | None = None,
        rate: int | None = None,
    ) -> list[str]:
        command = [
            self.binary,
            "-c",
            str(self.connections),
            "-t",
            f"{self.timeout:g}s",
            "-l",
            "-p",
            "r",
            "-o",
            "json",
            "-k",
            "--cert",
            self.cert,
            "--key",
            self.key,
            "-m",
            request.method,
            "-H",
            "Content-Type: application/json",
        ]
        if request.body:
            command += ["-b", request.body]
        if request.new_connection:
            command += ["-H", "Connection: close"]
        if count is not None:
            command += ["-n", str(count)]
        else:
            command += ["-d", f"{max(1.0, seconds or 1.0):g}s"]  # bombardier's minimum
        if rate is not None:
            command += ["--rate", str(rate)]
        command.append(url + request.path)
        if self.cpus is not None and shutil.which("taskset"):
            command = ["taskset", "-c", self.cpus, *command]
        return command

    def run(self, url: str, request: Request, **kwargs) -> LoadResult:
        command = self.command(url, request, **kwargs)
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            output = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"bombardier failed ({done.returncode}): {output}")
        return LoadResult.from_bombardier(done.stdout)
