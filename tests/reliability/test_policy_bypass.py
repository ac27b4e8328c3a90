"""Path tricks against a narrow policy over a real server: no request may run a handler the
policy does not allow for the path the server actually served (issue #10: 0 bypasses)."""

from __future__ import annotations

import fnmatch
import itertools
import posixpath
import random
import threading
from urllib.parse import unquote, urlsplit

import pytest

from tests.kes_server import PKI, config_yaml
from tests.reliability.conftest import RunRecord
from tests.reliability.rawhttp import Closed, Connection, Hang, client_context

pytestmark = pytest.mark.e2e

ALLOW = ("/v1/key/describe/public-*", "/v1/key/generate/public-*")
DENY = ("/v1/key/describe/public-secret*", "/v1/key/generate/public-secret*")
POLICY = f"""
policy:
  narrow:
    allow: [{", ".join(ALLOW)}]
    deny: [{", ".join(DENY)}]
    identities: [{{app}}]
"""
KEYS = ("public-1", "secret-1", "public-secret-1")
TARGETS = [
    ("GET", "/v1/key/describe/secret-1"),
    ("GET", "/v1/key/describe/public-secret-1"),
    ("PUT", "/v1/key/generate/secret-1"),
    ("PUT", "/v1/key/generate/public-secret-1"),
    ("DELETE", "/v1/key/delete/public-1"),
    ("PUT", "/v1/key/create/evil"),
    ("PUT", "/v1/key/import/evil"),
    ("GET", "/v1/key/list/*"),
    ("GET", "/v1/policy/read/narrow"),
    ("GET", "/v1/identity/list/*"),
    ("GET", "/v1/status"),
    ("GET", "/v1/metrics"),
    ("PUT", "/v1/key/decrypt/public-1"),
]
# What only a handler says: seeing one of these means the request got past the policy.
HANDLER_MESSAGES = (
    "key does not exist",
    "key already exists",
    "invalid characters",
    "invalid request body",
)


def allowed(path: str) -> bool:
    match = lambda patterns: any(fnmatch.fnmatchcase(path, p) for p in patterns)  # noqa: E731
    return match(ALLOW) and not match(DENY)


def effective_path(target: str) -> str:
    """The path a correct server serves for ``target``: decoded once, cleaned like Go."""
    path = unquote(urlsplit(target).path, errors="surrogateescape")
    cleaned = posixpath.normpath(path) if path else "/"
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned + ("/" if path.endswith("/") and cleaned != "/" else "")


def tricks(r: random.Random, path: str) -> str:
    head, _, name = path.rpartition("/")
    allowed_prefix = "/v1/key/describe/public-1"
    choices = [
        lambda: "".join(f"%{ord(c):02x}" if r.random() < 0.4 else c for c in path),
        lambda: "".join(f"%25{ord(c):02x}" if r.random() < 0.3 else c for c in path),
        lambda: f"{allowed_prefix}/../../{path[len('/v1/key/') :]}",
        lambda: f"{allowed_prefix}/..%2f..%2f{name}",
        lambda: f"/v1/key/describe/public-%2e%2e/{name}",
        lambda: path.replace("/", "//"),
        lambda: path.replace("/", "/./"),
        lambda: path.replace("/v1/", "/v1/x/../"),
        lambda: path.upper() if r.random() < 0.5 else path.replace("key", "KEY"),
        lambda: f"{head}/public-1/../{name}",
        lambda: f"{head}/public-{name}",
        lambda: f"{head}/public-1%2f..%2f{name}",
        lambda: f"{head}/public-1\\..\\{name}",
        lambda: f"{head}/public-1;/{name}",
        lambda: f"{path}%00public-1",
        lambda: f"{path}?path=/v1/key/describe/public-1",
        lambda: f"{path}#/v1/key/describe/public-1",
        lambda: f"http://localhost{path}",
        lambda: f"//localhost{path}",
        lambda: f"{head}/public-*",
        lambda: f"{head}/public-1*",
        lambda: f"{head}/{name}%20",
        lambda: f"{head}/\u0440ublic-1",  # Cyrillic er
        lambda: f"{head}/public\u20131",
        lambda: f"{path}/",
        lambda: f"{path}/.",
        lambda: f"{head}/./{name}",
        lambda: f"/v1/key/describe/public-1/../../../../{path.lstrip('/')}",
    ]
    text = r.choice(choices)()
    for _ in range(r.randint(0, 1)):
        text = r.choice(choices)() if r.random() < 0.2 else text
    return text


def test_the_oracle_knows_a_bypass_when_it_sees_one():
    assert allowed(effective_path("/v1/key/describe/public-1"))
    assert not allowed(effective_path("/v1/key/describe/public-1/../secret-1"))
    assert not allowed(effective_path("/v1/key/describe/public-1%2f..%2fsecret-1/.."))
    assert not allowed(effective_path("/v1/key/describe/public-secret-1"))
    assert not allowed(effective_path("http://x/v1/key/delete/public-1"))
    assert effective_path("/v1/key/describe/%70ublic-1") == "/v1/key/describe/public-1"


def test_no_path_trick_bypasses_the_policy(
    start_server, pki: PKI, run_record: RunRecord, tmp_path_factory
):
    keys = tmp_path_factory.mktemp("bypass") / "keys"
    server = start_server(config_yaml(pki, str(keys), extra=POLICY.format(app=pki["app"].identity)))
    run_record.keystores.append(keys)
    admin = server.client("admin")
    for name in KEYS:
        admin.create_key(name)
    admin.close()
    before = sorted(p.name for p in keys.iterdir())

    r = random.Random(5224)
    requests = []
    for (method, path), _ in itertools.product(TARGETS, range(190)):
        method = method if r.random() < 0.8 else r.choice(["POST", "PUT", "GET", "DELETE"])
        requests.append((method, tricks(r, path)))
    controls = [("GET", "/v1/key/describe/public-1"), ("PUT", "/v1/key/generate/public-1")] * 50
    requests += controls  # allowed: the oracle must see these served, or it sees nothing
    r.shuffle(requests)
    bypasses: list[str] = []
    tally = {"sent": 0, "closed": 0, "allowed_200": 0}
    lock = threading.Lock()
    body = b'{"context":"YWJj"}'

    def run(part: list[tuple[str, str]]) -> None:
        ident = pki["app"]
        context = client_context(pki.server_cert, ident.cert_file, ident.key_file)
        conn = None
        for method, target in part:
            if conn is None:
                conn = Connection(server.port, context, 30)
            wire = target.encode("utf-8", "surrogateescape")
            data = method.encode() + b" " + wire + b" HTTP/1.1\r\nHost: localhost\r\n"
            data += b"Content-Length: %d\r\n\r\n" % len(body) + body
            try:
                conn.send(data)
                answer = conn.answer()
            except (Closed, Hang, OSError):
                conn.close()
                conn = None
                with lock:
                    tally["closed"] += 1
                continue
            effective = effective_path(target)
            message = answer.json_error() or ""
            ran_handler = answer.status == 200 or any(m in message for m in HANDLER_MESSAGES)
            with lock:
                tally["sent"] += 1
                if ran_handler and not allowed(effective):
                    bypasses.append(f"{method} {target!r} -> {answer.status} {answer.body[:120]!r}")
                elif answer.status == 200:
                    tally["allowed_200"] += 1
                    if b'"name"' in answer.body:
                        served = answer.json()["name"]
                        if not allowed(f"/v1/key/describe/{served}"):
                            bypasses.append(f"{target!r} served key {served!r}")
            if answer.closes:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=run, args=(requests[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = sorted(p.name for p in keys.iterdir() if not p.name.startswith(".kes-flask-"))
    run_record.figure(
        "policy bypass corpus",
        requests=len(requests),
        answered=tally["sent"],
        closed_without_answer=tally["closed"],
        allowed_and_served=tally["allowed_200"],
        bypasses=len(bypasses),
    )
    assert bypasses == [], "\n".join(bypasses[:20])
    assert after == before  # nothing created, imported or deleted
    assert tally["sent"] >= len(requests) * 0.95
    assert tally["allowed_200"] >= len(controls)
