"""The typed SDK (``kes_flask.client.Client``) against real kes-flask servers.

Two servers share one filesystem keystore, so either can answer for the other: the failover
tests stop one of them (a real process going down) and keep working through the other. The
examples of docs/sdk.md run here too, against the same servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from kes_flask.client import (
    API,
    DEK,
    AuditEvent,
    Client,
    DecryptionFailed,
    ErrKeyExists,
    IdentityNotFound,
    KesConnectionError,
    KesServerError,
    KesTLSError,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    NotAllowed,
    Policy,
    PolicyNotFound,
    Status,
)
from kes_flask.client.environment import SettingsError, from_environment
from tests.kes_server import PKI, KesServer, config_yaml

FAST = (0.01, 0.02)  # retry delays for the tests (kms-go: 0.2 to 1.0 s)
POLICY = """
policy:
  app:
    allow: [/v1/key/create/app-*, /v1/key/generate/app-*, /v1/key/decrypt/app-*, /v1/status]
    deny: [/v1/key/create/app-secret*]
    identities: [{app}]
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, pki: PKI):
    keys = tmp_path_factory.mktemp("sdk-keys")
    started = []
    for name in ("one", "two"):
        workdir = tmp_path_factory.mktemp(f"sdk-{name}")
        config = config_yaml(pki, str(keys), extra=POLICY.format(app=pki["app"].identity))
        started.append(KesServer(workdir, pki, config, workers=1).start(wait=False))
    for server in started:  # both boot at the same time
        server.wait_ready()
    yield started
    for server in started:
        server.stop()


def client(server: KesServer, pki: PKI, who: str = "admin", **kwargs) -> Client:
    return Client(
        server.endpoint,
        api_key=pki[who].api_key,
        ca_file=pki.server_cert,
        retry_delay=FAST,
        **kwargs,
    )


def test_typed_results_for_every_route(servers, pki):
    admin = client(servers[0], pki)
    assert admin.version()
    assert admin.is_ready()
    status = admin.status()
    assert isinstance(status, Status) and status.num_cpu >= 1 and status.latency > timedelta(0)
    apis = admin.apis()
    assert len(apis) == 22 and all(isinstance(api, API) for api in apis)
    assert API("PUT", "/v1/key/generate/", 1_000_000, timedelta(seconds=15)) in apis
    admin.create_key("sdk-key")
    info = admin.describe_key("sdk-key")
    assert isinstance(info, KeyInfo) and info.algorithm == "AES256"
    assert info.created_by == pki["admin"].identity and info.created_at.year >= 2024
    admin.import_key("sdk-imported", bytes(32), "ChaCha20")
    assert admin.describe_key("sdk-imported").algorithm == "ChaCha20"
    assert {"sdk-imported", "sdk-key"} <= set(admin.list_keys("sdk*"))
    dek = admin.generate_key("sdk-key", context=b"bucket/object")
    assert isinstance(dek, DEK) and len(dek.plaintext) == 32
    assert admin.decrypt("sdk-key", dek.ciphertext, b"bucket/object") == dek.plaintext
    sealed = admin.encrypt("sdk-key", b"hello")
    assert admin.decrypt("sdk-key", sealed) == b"hello"
    assert len(admin.hmac("sdk-key", b"message")) == 32
    assert admin.list_policies() == ["app"]
    policy = admin.get_policy("app")
    assert isinstance(policy, Policy) and "/v1/status" in policy.allow
    assert policy.deny == ("/v1/key/create/app-secret*",)
    assert admin.describe_policy("app").created_by == pki["admin"].identity
    assert admin.describe_identity(pki["app"].identity).policy == "app"
    assert admin.describe_identity(pki["admin"].identity).admin
    assert pki["app"].identity in admin.list_identities()
    assert admin.describe_self().admin
    me = client(servers[0], pki, "app").describe_self()
    assert (me.identity, me.policy) == (pki["app"].identity, "app")
    assert "/v1/status" in me.allow
    metrics = admin.metrics()
    assert metrics.request_ok > 0 and metrics.up_time > timedelta(0) and metrics.cpus >= 1
    admin.delete_key("sdk-imported")
    assert "sdk-imported" not in admin.list_keys()


def test_each_typed_error_for_its_server_error(servers, pki):
    admin, app = client(servers[0], pki), client(servers[0], pki, "app")
    admin.create_key("typed-key")
    with pytest.raises(KeyExists) as exists:
        admin.create_key("typed-key")
    assert exists.value == ErrKeyExists and exists.value.status == 400
    with pytest.raises(KeyNotFound):
        admin.describe_key("typed-missing")
    with pytest.raises(KeyNotFound):
        admin.generate_key("typed-missing")
    with pytest.raises(NotAllowed):
        app.create_key("other-key")
    with pytest.raises(NotAllowed):
        app.create_key("app-secret-key")  # a deny rule
    with pytest.raises(NotAllowed):
        client(servers[0], pki, "stranger").status()
    with pytest.raises(DecryptionFailed):
        admin.decrypt("typed-key", bytes(60))
    with pytest.raises(PolicyNotFound):
        admin.get_policy("nope")
    with pytest.raises(IdentityNotFound):
        admin.describe_identity(pki["stranger"].identity)
    with pytest.raises(KesServerError) as bad_name:
        admin.create_key("bad name")  # an untyped error keeps status and message
    assert type(bad_name.value) is KesServerError and bad_name.value.status == 400
    assert "invalid characters" in bad_name.value.message


def test_certificate_identity(servers, pki):
    ecdsa = Client(
        servers[0].endpoint,
        cert_file=pki["ecdsa"].cert_file,
        key_file=pki["ecdsa"].key_file,
        ca_file=pki.server_cert,
    )
    with pytest.raises(IdentityNotFound):  # not assigned to a policy
        ecdsa.describe_self()
    with pytest.raises(NotAllowed):
        ecdsa.create_key("ecdsa-key")


def test_untrusted_server_certificate_is_a_tls_error(servers, pki):
    untrusted = Client(servers[0].endpoint, api_key=pki["admin"].api_key, retry_delay=FAST)
    with pytest.raises(KesTLSError) as err:
        untrusted.status()
    assert str(err.value).startswith(f'Get "{servers[0].endpoint}/v1/status": tls: ')
    assert client(servers[0], pki, insecure=True).status().version  # -k


def test_failover_from_a_dead_endpoint(servers, pki, dead_port):
    dead = f"https://127.0.0.1:{dead_port}"  # nothing listens there
    both = Client(
        [dead, servers[0].endpoint],
        api_key=pki["admin"].api_key,
        ca_file=pki.server_cert,
        retry_delay=FAST,
    )
    for _ in range(5):  # whichever endpoint is picked first, every call succeeds
        assert both.status().endpoint == servers[0].endpoint
    assert dead in both.wire.transport._benched  # the dead one sits out its 30 s


def test_audit_log_iterator(servers, pki):
    admin = client(servers[0], pki, timeout=60)
    events: list[AuditEvent] = []
    with admin.audit_log() as stream:
        done = threading.Event()

        def read() -> None:
            for event in stream:
                events.append(event)
                if event.path == "/v1/key/create/audited-key":
                    break
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        admin.create_key("audited-key")
        assert done.wait(30), "no audit event"
    event = events[-1]
    assert (event.status, event.identity) == (200, pki["admin"].identity)
    with pytest.raises(NotAllowed):
        client(servers[0], pki, "app").error_log()


def test_settings_from_the_environment(pki):
    env = {"KES_SERVER": "a:7373, http://b:7373", "KES_API_KEY": str(pki["admin"].api_key)}
    settings = from_environment(env)
    assert settings.endpoints == ["https://a:7373", "https://b:7373"]
    assert settings.api_key == pki["admin"].api_key
    masked = {"MINIO_KES_API_KEY": "", **env}  # present but empty: masks KES_API_KEY
    with pytest.raises(SettingsError, match=r"^no API key specified"):
        from_environment(masked)
    legacy = {
        "KES_CLIENT_TLS_CERT_FILE": pki["ecdsa"].cert_file,
        "KES_CLIENT_TLS_KEY_FILE": pki["ecdsa"].key_file,
    }
    assert from_environment(legacy).endpoints == ["https://127.0.0.1:7373"]
    mismatch = {"KES_CLIENT_CERT": pki["ecdsa"].cert_file, "KES_CLIENT_KEY": pki["app"].key_file}
    with pytest.raises(SettingsError, match=r"^tls: private key does not match public key$"):
        from_environment(mismatch)
    with pytest.raises(SettingsError, match=r"^API key and certificate file cannot"):
        from_environment({**env, "KES_CLIENT_CERT": "c.crt"})


def test_connections_are_kept_alive(servers, pki):
    admin = client(servers[0], pki)
    admin.create_key("alive-key")
    sock = admin.wire.transport._pool()[servers[0].endpoint].sock
    sealed = admin.encrypt("alive-key", b"\x00\xff")
    assert admin.decrypt("alive-key", sealed) == b"\x00\xff"
    assert admin.wire.transport._pool()[servers[0].endpoint].sock is sock


DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.M | re.S)
RUNNER = """
import sys, traceback
blocks = sys.stdin.read().split("\\0")
for index, code in enumerate(blocks):
    print(f"--- block {index}", flush=True)
    try:
        exec(compile(code, f"docs/sdk.md block {index}", "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        sys.exit(f"block {index} failed")
"""


def test_every_example_of_docs_sdk_md_runs(servers, pki, tmp_path):
    """Each ``python`` block of docs/sdk.md, in a fresh interpreter, with the kes environment."""
    assert len(BLOCKS) >= 6
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KES_", "MINIO_"))}
    env.update(
        KES_SERVER=servers[0].endpoint,
        KES_API_KEY=str(pki["admin"].api_key),
        SSL_CERT_FILE=pki.server_cert,
    )
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input="\0".join(BLOCKS),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    outputs = done.stdout.split("--- block ")[1:]
    assert len(outputs) == len(BLOCKS)
    for output in outputs:  # every example prints something
        assert output.split("\n", 1)[1].strip(), output
    assert "404 key does not exist" in done.stdout


def test_failover_when_a_server_process_goes_down(servers, pki):
    """Last in the module: stops ``servers[1]`` for good."""
    going, staying = servers[1], servers[0]
    both = Client(
        [going.endpoint, staying.endpoint],
        api_key=pki["admin"].api_key,
        ca_file=pki.server_cert,
        retry_delay=FAST,
    )
    both.create_key("failover-key")
    dek = both.generate_key("failover-key")
    stream = Client(going.endpoint, api_key=pki["admin"].api_key, ca_file=pki.server_cert)
    events = stream.audit_log()
    going.stop()  # a kept-alive connection to it dies, and new ones are refused
    assert list(events) == []  # the stream ends quietly when its server goes away
    for _ in range(4):
        assert both.decrypt("failover-key", dek.ciphertext) == dek.plaintext
    assert both.status().endpoint == staying.endpoint
    with pytest.raises(KesConnectionError) as down:
        Client(going.endpoint, api_key=pki["admin"].api_key, retry_delay=FAST).status()
    assert str(down.value).startswith(f'kes: connection error: Get "{going.endpoint}/v1/status": ')
    assert "connection refused" in str(down.value)
