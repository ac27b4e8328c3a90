"""The systemd units: ``systemd-analyze verify`` is clean, and what can be checked without
systemd as PID 1 is checked for real — the unit's ExecStart serves the shipped example config,
readiness is notified only once the keys exist and the socket listens, ExecReload reloads,
KillSignal stops gracefully, and the unit grants exactly the privileges the server needs."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest

from kes_flask.client import KesClient
from kes_flask.config import parse_config
from kes_flask.server.banner import RELOADED_LINE
from tests.kes_server import PKI, KesServer, config_yaml
from tests.ports import PORT_TRIES, free_port, port_taken

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UNITS = {
    "kes-flask.service": ROOT / "systemd" / "kes-flask.service",
    "kes-flask@tenant-a.service": ROOT / "systemd" / "kes-flask@.service",
}


def parse_unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values, in order (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


def one(unit: dict[str, list[str]], key: str) -> str:
    (value,) = unit[key]
    return value


def staged_root(tmp_path: Path) -> Path:
    """A filesystem root with the host's unit library and the programs the units execute."""
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    library = next(p for p in (Path("/usr/lib/systemd"), Path("/lib/systemd")) if p.is_dir())
    shutil.copytree(library, root / "usr" / "lib" / "systemd", symlinks=True)
    for path in UNITS.values():
        unit = parse_unit(path)
        for command in (one(unit, "Service.ExecStart"), one(unit, "Service.ExecReload")):
            program = root / shlex.split(command)[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\n")
            program.chmod(0o755)
        shutil.copy(path, root / "etc" / "systemd" / "system" / path.name)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    directory = root / "etc" / "systemd" / "system"
    for unit in units:  # an instance of the template is verified through a link to it
        if "@" in unit and not (directory / unit).exists():
            (directory / unit).symlink_to("kes-flask@.service")
    paths = [str(directory / unit) for unit in units]
    command = ["systemd-analyze", "verify", f"--root={root}", "--man=no", *paths]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_units_pass_systemd_analyze_verify(tmp_path: Path):
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("KES_FLASK_REQUIRE_SYSTEMD_ANALYZE"):
            pytest.fail("systemd-analyze is missing but required (see .ci/run)")
        pytest.skip("systemd-analyze is not installed here; .ci/run installs it for CI")
    root = staged_root(tmp_path)
    result = verify(root, *UNITS)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # the check has teeth: a misspelt value is reported
    broken = root / "etc" / "systemd" / "system" / "kes-flask.service"
    broken.write_text(broken.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe"))
    assert "Failed to parse boolean value" in verify(root, "kes-flask.service").stderr


@pytest.mark.parametrize("name", list(UNITS))
def test_units_grant_exactly_what_the_server_needs(name: str):
    unit = parse_unit(UNITS[name])
    instance = "tenant-a" if "@" in name else ""
    expand = lambda text: text.replace("%i", instance)  # noqa: E731
    argv = shlex.split(one(unit, "Service.ExecStart"))
    assert argv[:2] == ["/opt/kes-flask/bin/kes-flask", "server"]
    assert "--mlock" in argv
    # CAP_IPC_LOCK for --mlock is the only privilege, and memory locking is unlimited
    assert one(unit, "Service.CapabilityBoundingSet") == "CAP_IPC_LOCK"
    assert one(unit, "Service.AmbientCapabilities") == "CAP_IPC_LOCK"
    assert one(unit, "Service.LimitMEMLOCK") == "infinity"
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes"}
    expected |= {"PrivateTmp": "yes", "Type": "notify", "Restart": "on-failure"}
    for key, value in expected.items():
        assert one(unit, f"Service.{key}") == value, key
    assert shlex.split(one(unit, "Service.ExecReload")) == ["/bin/kill", "-HUP", "$MAINPID"]
    assert one(unit, "Service.EnvironmentFile").startswith("-/etc/kes-flask/")
    # the example config's FS key store (relative to WorkingDirectory) is writable under
    # ProtectSystem=strict, and nothing else is
    example = parse_config((ROOT / "config.example.yml").read_text(), {}, "config.example.yml")
    workdir = PurePosixPath(expand(one(unit, "Service.WorkingDirectory")))
    keys = workdir / example.keystore.path
    writable = [PurePosixPath(expand(p)) for p in one(unit, "Service.ReadWritePaths").split()]
    state = PurePosixPath("/var/lib") / expand(one(unit, "Service.StateDirectory"))
    assert any(keys.is_relative_to(p) for p in writable)
    assert writable == [state] and workdir == state
    config_path = PurePosixPath(expand(argv[argv.index("--config") + 1]))
    assert config_path.is_relative_to(
        PurePosixPath("/etc") / expand(one(unit, "Service.ConfigurationDirectory"))
    )


def can_lock_memory() -> bool:
    from kes_flask.server.hardening import memory_lock_permitted

    return memory_lock_permitted()[0]


def locked_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # a worker that is being replaced
    line = next((line for line in status.splitlines() if line.startswith("VmLck:")), "VmLck: 0")
    return int(line.split()[1])


def wait_until_memory_is_locked(master: int, timeout: float = 60.0) -> None:
    """Probe until the master and every worker hold locked memory.

    READY=1 comes from the master once it listens; its workers fork and lock themselves after
    that, so on a busy machine they may not have done so yet when the notification arrives.
    """
    children = Path(f"/proc/{master}/task/{master}/children")
    deadline = time.monotonic() + timeout
    while True:
        workers = [int(pid) for pid in children.read_text().split()]
        locked = {pid: locked_kib(pid) for pid in [master, *workers]}
        if workers and all(locked.values()):
            return
        assert time.monotonic() < deadline, f"memory not locked within {timeout}s: {locked}"
        time.sleep(0.1)


def start_notified(
    argv: list[str], workdir: Path, env: dict[str, str], notify: socket.socket, write_config
) -> tuple[subprocess.Popen[str], int, str]:
    """Start ``argv`` with ``write_config(port)`` on a free port until its first notification:
    (process, port, message). Another port if the picked one was taken before the bind."""
    attempt = 0
    while True:
        attempt += 1
        port = free_port()
        write_config(port)
        process = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        notify.settimeout(0.5)
        while time.monotonic() < deadline and process.poll() is None:
            try:
                return process, port, notify.recv(4096).decode()
            except TimeoutError:
                continue
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=30)
        if not port_taken(stderr) or attempt == PORT_TRIES:
            raise AssertionError(f"no notification (exit {process.returncode}):\n{stderr}")


def test_exec_start_serves_the_example_config_reloads_and_stops(tmp_path: Path, pki: PKI):
    unit = parse_unit(UNITS["kes-flask.service"])
    workdir = tmp_path / "var-lib-kes-flask"  # stands in for WorkingDirectory
    etc = tmp_path / "etc-kes-flask"
    workdir.mkdir()
    etc.mkdir()
    shutil.copy(pki.server_key, workdir / "private.key")  # the example's relative TLS paths
    shutil.copy(pki.server_cert, workdir / "public.crt")
    example = (ROOT / "config.example.yml").read_text()

    def write_config(port: int) -> None:
        config = (
            example.replace("address: 0.0.0.0:7373", f"address: 127.0.0.1:{port}")
            .replace("identity: disabled  # PLACEHOLDER", "identity: ${KES_ADMIN_IDENTITY}")
            .replace("keys: []", "keys:\n  - name: minio-default-key")
        )
        assert config.count("${KES_ADMIN_IDENTITY}") == 1 and f"127.0.0.1:{port}" in config
        (etc / "config.yml").write_text(config)

    (etc / "kes-flask.env").write_text(f"KES_ADMIN_IDENTITY={pki['admin'].identity}\n")

    argv = shlex.split(one(unit, "Service.ExecStart"))
    argv[0] = str(Path(sys.executable).with_name("kes-flask"))
    argv[argv.index("--config") + 1] = str(etc / "config.yml")
    if not can_lock_memory():  # the unit grants CAP_IPC_LOCK; an unprivileged test run cannot
        argv.remove("--mlock")
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env_file = one(unit, "Service.EnvironmentFile").lstrip("-")
    assert env_file == "/etc/kes-flask/kes-flask.env"
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    env.update(line.split("=", 1) for line in (etc / "kes-flask.env").read_text().splitlines())
    process, port, message = start_notified(argv, workdir, env, notify, write_config)
    try:
        assert "READY=1" in message
        # ready means: the pre-defined keys exist and the listener accepts connections
        assert (workdir / "keys" / "minio-default-key").exists()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        client = KesClient(
            f"https://127.0.0.1:{port}", api_key=pki["admin"].api_key, ca_file=pki.server_cert
        )
        assert client.describe_key("minio-default-key")["created_by"] == pki["admin"].identity
        client.close()
        if "--mlock" in argv:
            wait_until_memory_is_locked(process.pid)
        reload = [
            arg.replace("$MAINPID", str(process.pid))
            for arg in shlex.split(one(unit, "Service.ExecReload"))
        ]
        subprocess.run(reload, check=True)
        deadline = time.monotonic() + 30
        lines = []
        while RELOADED_LINE not in lines:
            assert time.monotonic() < deadline, lines
            lines.append(process.stdout.readline().rstrip("\n"))
    finally:
        kill = getattr(signal, one(unit, "Service.KillSignal"))
        process.send_signal(kill)
        code = process.wait(float(one(unit, "Service.TimeoutStopSec")))
        notify.close()
    assert code == 0


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path, pki: PKI):
    server = KesServer(tmp_path, pki, config_yaml(pki, str(tmp_path / "keys")), workers=1).start()
    KesClient(server.endpoint, api_key=pki["admin"].api_key, ca_file=pki.server_cert).create_key(
        "k"
    )
    context = server.tls_context("admin")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            body = b'{"context":"e30="}'
            tls.sendall(
                b"POST /v1/key/generate/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body[:5]
            )  # the request is in flight: headers and part of the body
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            tls.sendall(body[5:] + b"\r\n0\r\n\r\n")
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert b'"plaintext"' in response
    assert server.process.wait(30) == 0
