"""The real Go peers: build them once into a cache, run the Go ``kes`` server and CLI.

``go install github.com/minio/kes/cmd/kes@v0.24.0`` fails here because it looks up the module's
deprecation notice (the proxy refuses ``@v/list``), so the binary is built from a throwaway
module that requires the tagged version. Nothing built here is part of the repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.kes_server import KesServer

KES_MODULE = "github.com/minio/kes"
KES_VERSION = "v0.24.0"  # the newest version the Go module proxy serves (checked 2026-11-23)
MINIO_MODULE = "github.com/minio/minio"
# minio/minio HEAD 7aac2a2 (2026-02-12): what `@latest` resolves to, pinned. MinIO release tags
# are not semver and their commits are not served by the proxy here. "off" skips MinIO.
MINIO_VERSION = os.environ.get("KES_FLASK_INTEROP_MINIO", "v0.0.0-20260212201848-7aac2a2c5b7c")


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "kes-flask" / "interop"
    return Path(os.environ.get("KES_FLASK_INTEROP_CACHE", default))


def go_binary() -> str | None:
    return shutil.which("go")


def go_version() -> str:
    go = go_binary()
    if go is None:
        return "not installed"
    return subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()


def build(module: str, version: str, package: str, name: str, timeout: float = 1800) -> Path:
    """``package`` of ``module@version`` as ``<cache>/<name>-<version>/<name>``, built once."""
    target = cache_dir() / f"{name}-{version}" / name
    if target.exists():
        return target
    go = go_binary()
    if go is None:
        raise RuntimeError("go is not installed")
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")
    with tempfile.TemporaryDirectory(prefix="kes-flask-go-") as workdir:
        Path(workdir, "go.mod").write_text("module interopbuild\n\ngo 1.24\n")
        for command in (
            [go, "get", f"{module}@{version}"],
            [go, "build", "-trimpath", "-o", str(target) + ".tmp", package],
        ):
            result = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
            )
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    os.replace(str(target) + ".tmp", target)
    return target


def build_kes() -> Path:
    return build(KES_MODULE, KES_VERSION, f"{KES_MODULE}/cmd/kes", "kes")


def build_minio() -> Path:
    return build(MINIO_MODULE, MINIO_VERSION, MINIO_MODULE, "minio")


class GoKesServer(KesServer):
    """The Go ``kes server`` driven exactly like a kes-flask server in the tests."""

    def __init__(self, binary: Path, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.binary = binary

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "server",
            "--config",
            str(self.config_path),
            "--addr",
            f"127.0.0.1:{self.port}",
            *self.extra_args,
        ]


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class GoCLI:
    """The Go ``kes`` client commands, with credentials from the environment (cli.md §1.6)."""

    binary: Path

    def command(
        self,
        *args: str,
        server: str,
        api_key: str | None = None,
        cert: tuple[str, str] | None = None,
        ca_file: str | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment for ``kes <args>`` against ``server``."""
        overrides = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KES_", "MINIO_"))}
        env["KES_SERVER"] = server
        if api_key is not None:
            env["KES_API_KEY"] = api_key
        if cert is not None:
            env["KES_CLIENT_CERT"], env["KES_CLIENT_KEY"] = cert
        if ca_file is not None:
            env["SSL_CERT_FILE"] = ca_file
        else:
            args = (*args, "-k")
        env.update(overrides)
        return [str(self.binary), *args], env

    def run(self, *args: str, timeout: float = 30, **options) -> CLIResult:
        argv, env = self.command(*args, **options)
        try:
            done = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as expired:
            return CLIResult(-1, _text(expired.stdout), _text(expired.stderr))
        return CLIResult(done.returncode, done.stdout, done.stderr)

    def first_line(self, *args: str, timeout: float = 60, **options) -> str:
        """The first stdout line of a command that streams until interrupted (``kes metric``,
        ``kes log``): as soon as it comes, however long the CLI takes on a busy machine."""
        argv, env = self.command(*args, **options)
        return first_stdout_line(argv, env, timeout=timeout)


def first_stdout_line(
    argv: list[str],
    env: dict[str, str],
    poke: Callable[[], None] | None = None,
    timeout: float = 60,
) -> str:
    """Start a command that streams until interrupted, return its first stdout line as soon as
    it comes (calling ``poke``, if given, every half second until then), stop it with SIGINT."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while reader.is_alive() and time.monotonic() < deadline:
            if poke is not None:
                poke()
            reader.join(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
    assert lines and lines[0].strip(), f"no output within {timeout}s: {process.stderr.read()}"
    return lines[0]


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode()
