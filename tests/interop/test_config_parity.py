"""One configuration file, two servers: what Go KES starts with, kes-flask starts with; what
Go KES rejects, kes-flask rejects — with the same ``kesconf:`` message wherever Go has one.

Known, deliberate differences are listed in DIFFERENT below and in docs/compatibility.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kes_flask.client import KesClient
from tests.interop.peers import GoKesServer
from tests.kes_server import PKI, KesServer, free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "config"


def base(pki: PKI, keys: str) -> str:
    return f"""admin:
  identity: {pki["admin"].identity}
tls:
  key: {pki.server_key}
  cert: {pki.server_cert}
keystore:
  fs:
    path: {keys}
"""


def broken_configs(pki: PKI, keys: str) -> dict[str, str]:
    ok = base(pki, keys)
    admin = pki["admin"].identity
    fs_block = f"  fs:\n    path: {keys}\n"
    return {
        "empty file": "",
        "top level is a list": "- a\n- b\n",
        "duplicate key": ok + "admin:\n  identity: x\n",
        "no admin identity": ok.replace(f"  identity: {admin}\n", "  identity: \n"),
        "old root key": ok.replace(f"admin:\n  identity: {admin}\n", f"root: {admin}\n"),
        "no TLS key": ok.replace(f"  key: {pki.server_key}\n", ""),
        "no TLS certificate": ok.replace(f"  cert: {pki.server_cert}\n", ""),
        "invalid tls.auth": ok.replace("tls:\n", "tls:\n  auth: maybe\n"),
        "negative cache expiry": ok + "cache:\n  expiry:\n    any: -5m\n",
        "duration in days": ok + "cache:\n  expiry:\n    any: 1d\n",
        "duration without unit": ok + "cache:\n  expiry:\n    unused: 0\n",
        "invalid log level": ok + "log:\n  error: WARNING\n",
        "invalid log level suffix": ok + "log:\n  audit: INFO+X\n",
        "negative API timeout": ok + "api:\n  /v1/status:\n    timeout: -1s\n",
        "non-boolean skip_auth": ok + "api:\n  /v1/status:\n    skip_auth: maybe\n",
        "duplicate pre-defined key": ok + "keys:\n  - name: a\n  - name: a\n",
        "no keystore": ok.replace(f"keystore:\n{fs_block}", ""),
        "two keystores": ok + "  vault:\n    endpoint: https://127.0.0.1:8200\n",
        "fs without path": ok.replace(f"    path: {keys}\n", '    path: ""\n'),
        "unsupported version": "version: v2\n" + ok,
        "unset env variable": ok.replace(
            f"  identity: {admin}", "  identity: ${KES_FLASK_PARITY_UNSET}"
        ),
        "policy identity is admin": ok + f"policy:\n  p:\n    identities: [{admin}]\n",
        "proxy identity is admin": ok.replace(
            "tls:\n", f"tls:\n  proxy:\n    identities: [{admin}]\n"
        ),
        "invalid policy name": ok + "policy:\n  bad.name:\n    allow: [/v1/status]\n",
        "identity in two policies": ok
        + "policy:\n  a:\n    identities: [x1]\n  b:\n    identities: [x1]\n",
        "missing certificate file": ok.replace(pki.server_cert, "/nonexistent/server.crt"),
        "vault without auth method": ok.replace(
            fs_block, "  vault:\n    endpoint: https://127.0.0.1:8200\n"
        ),
        "azure without endpoint": ok.replace(
            fs_block, '  azure:\n    keyvault:\n      endpoint: ""\n'
        ),
    }


# Accepted differences in the error *text* (both servers still refuse to start):
DIFFERENT = {
    "empty file": "Go prints its YAML decoder's bare 'EOF'",
    "top level is a list": "YAML-level wording (yaml.v3's type error vs. ours)",
    "duplicate key": "YAML-level wording",
    "duration in days": "YAML-level wording",
    "duration without unit": "YAML-level wording",
    "non-boolean skip_auth": "YAML-level wording",
    "old root key": "kes-flask adds a hint that 'root' became 'admin.identity'",
    "invalid tls.auth": "Go prints its internal struct ('{ maybe}'), kes-flask the value",
}

# Go iterates policies in random map order, so it names either of the two; kes-flask the second.
EITHER_POLICY = {"identity in two policies": re.compile(r"policy '(a|b)'")}


def start_and_exit(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    """name -> (go result, kes-flask result) for every broken configuration."""
    workdir = tmp_path_factory.mktemp("parity")
    results = {}
    for name, text in broken_configs(pki, str(workdir / "keys")).items():
        path = workdir / "config.yml"
        path.write_text(text)
        args = ["server", "--config", str(path), "--addr", f"127.0.0.1:{free_port()}"]
        go = start_and_exit([str(go_kes), *args], workdir)
        flask = start_and_exit([sys.executable, "-m", "kes_flask", *args], workdir)
        results[name] = (go, flask)
    return results


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def test_every_broken_config_is_rejected_by_both(broken):
    for name, (go, flask) in broken.items():
        assert go.returncode == 1, (name, go.stderr)
        assert flask.returncode == 1, (name, flask.stderr)
        assert "Traceback" not in flask.stderr, name
        # (Go KES prints its ready line before it checks policy names; kes-flask never does)
        assert "Server is up and running" not in flask.stdout, name


def test_error_messages_match_go_where_not_listed_as_different(broken):
    for name, (go, flask) in broken.items():
        if name in DIFFERENT:
            continue
        go_line, flask_line = last_line(go), last_line(flask)
        if name in EITHER_POLICY:
            go_line, flask_line = (
                EITHER_POLICY[name].sub("policy '?'", x) for x in (go_line, flask_line)
            )
        assert flask_line == go_line, name


def test_listed_differences_are_real(broken):
    """Keep DIFFERENT honest: every entry still differs (else it belongs to the matches)."""
    for name in DIFFERENT:
        go, flask = broken[name]
        assert last_line(flask) != last_line(go), name


def prepare_example(workdir: Path, pki: PKI, text: str) -> Path:
    shutil.copy(pki.server_key, workdir / "private.key")
    shutil.copy(pki.server_cert, workdir / "public.crt")
    path = workdir / "config.yml"
    path.write_text(text)
    return path


VALID = {
    "config.example.yml": lambda pki: (ROOT / "config.example.yml").read_text(),
    "upstream fixture fs.yml": lambda pki: (
        (FIXTURES / "fs.yml")
        .read_text()
        .replace("./server.key", "private.key")
        .replace("./server.cert", "public.crt")
        .replace("/tmp/keys", "./keys")
    ),
    "upstream fixture custom-api.yml": lambda pki: (
        (FIXTURES / "custom-api.yml").read_text().replace("/tmp/kes", "./keys")
    ),
    "env references": lambda pki: (
        "address: ${ADDRESS}\nadmin:\n  identity: ${ADMIN}\ntls:\n"
        "  key: ${TLS_KEY}\n  cert: public.crt\nkeystore:\n  fs:\n    path: ${KEYS}\n"
        "api:\n  /v1/ready:\n    skip_auth: ${SKIP}\n    timeout: ${TIMEOUT}\n"
    ),
}


@pytest.mark.parametrize("name", list(VALID))
def test_the_same_valid_config_starts_both_servers(
    tmp_path_factory, pki: PKI, go_kes: Path, name: str
):
    answers = {}
    for implementation in ("go", "flask"):
        workdir = tmp_path_factory.mktemp("valid")
        text = VALID[name](pki)
        path = prepare_example(workdir, pki, text)
        env = {
            "ADMIN": pki["admin"].identity,
            "TLS_KEY": "private.key",
            "KEYS": "./keys",
            "SKIP": "on",
            "TIMEOUT": "20s",
            "ADDRESS": "127.0.0.1:7373",
        }
        cls = GoKesServer if implementation == "go" else KesServer
        args = (go_kes,) if implementation == "go" else ()
        server = cls(*args, workdir, pki, path.read_text(), env=env)
        server.start()
        try:
            client = KesClient(server.endpoint, api_key=pki["admin"].api_key, insecure=True)
            statuses = {
                path: client.request("GET", path)[0]
                for path in ("/version", "/v1/ready", "/v1/status", "/v1/api")
            }
            routes = None
            if statuses["/v1/api"] == 200:  # the admin here is ours: compare the route settings too
                routes = sorted((r["path"], r["timeout"]) for r in client.apis())
            answers[implementation] = (statuses, routes)
        finally:
            server.stop()
        assert (workdir / "keys").is_dir()
    assert answers["flask"] == answers["go"]
