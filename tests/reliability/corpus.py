"""The malformed-request corpus: deterministic mutations of valid KES requests.

Every item is the exact bytes of one request (or of a broken byte stream). ``solo`` items break
HTTP framing, so they are sent alone on a fresh connection that is then half-closed; the others
keep framing intact and can share kept-alive connections, pipelined.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass

KEY = "k"  # exists before the corpus runs; no corpus request can delete it (deletes use c*)


@dataclass(frozen=True)
class Item:
    category: str
    data: bytes
    solo: bool = False
    head: bool = False  # a HEAD request: the answer has no body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BODY_ROUTES = {
    "encrypt": lambda r: {"plaintext": b64(r.randbytes(r.randint(0, 64))), "context": b64(b"c")},
    "decrypt": lambda r: {"ciphertext": b64(r.randbytes(r.randint(0, 120))), "context": ""},
    "generate": lambda r: {"context": b64(r.randbytes(r.randint(0, 32)))},
    "hmac": lambda r: {"message": b64(r.randbytes(r.randint(0, 64)))},
    "import": lambda r: {"key": b64(r.randbytes(32)), "cipher": r.choice(["AES256", "ChaCha20"])},
}
GET_PATHS = [
    "/version",
    "/v1/ready",
    "/v1/status",
    "/v1/api",
    "/v1/metrics",
    f"/v1/key/describe/{KEY}",
    "/v1/key/list/*",
    "/v1/key/list/",
    "/v1/policy/list/*",
    "/v1/policy/describe/app",
    "/v1/policy/read/app",
    "/v1/identity/list/*",
    "/v1/identity/self/describe",
]
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "FOO", "get"]
JUNK_VALUES = [
    "1" * 5000,
    "-" + "9" * 400,
    "1." + "0" * 400,
    "1e999999",
    "NaN",
    "-Infinity",
    "[" * 3000 + "]" * 3000,
    '{"a":' * 2000 + "1" + "}" * 2000,
    "[" * 5000,
    "true",
    "null",
    "[]",
    "{}",
    '"\\ud800"',
    '"\\u0000"',
    '"' + "A" * 200_000 + '"',
    '"####"',
    '"YWJj"',
    '"YW\\nJj"',
    '"\x01\x02"',
    "0.1e-99999",
    '"' + "é" * 1000 + '"',
]


def _request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}"
    if body or method in ("PUT", "POST"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def _mutate_json(r: random.Random, document: dict) -> bytes:
    text = json.dumps(document)
    choice = r.randrange(14)
    if choice == 0 and text:  # flip a byte
        i = r.randrange(len(text))
        return (text[:i] + chr(r.randrange(1, 256)) + text[i + 1 :]).encode("utf-8", "replace")
    if choice == 1:  # truncate
        return text[: r.randrange(len(text) + 1)].encode()
    if choice == 2:  # a field with a junk value
        field = r.choice([*document, "version", "x"])
        return ("{" + json.dumps(field) + ":" + r.choice(JUNK_VALUES) + "}").encode("utf-8")
    if choice == 3:  # wrong types
        return json.dumps(
            {k: r.choice([1, True, [v], {"v": v}, None]) for k, v in document.items()}
        ).encode()
    if choice == 4:  # case and duplicates
        doubled = ", ".join(
            f'"{k.upper()}": "x", "{k}": {json.dumps(v)}' for k, v in document.items()
        )
        return ("{" + doubled + "}").encode()
    if choice == 5:
        return r.choice(
            [b"", b" ", b"null", b"[]", b"\xef\xbb\xbf{}", b"\xff\xfe{}", b"{}{}", b"{"]
        )
    if choice == 6:  # insert random punctuation
        i = r.randrange(len(text) + 1)
        return (text[:i] + r.choice(list(',:{}[]"\\')) * r.randint(1, 5) + text[i:]).encode()
    if choice == 7:
        return text.encode() + b" trailing garbage \x00\xff"
    if choice == 8:
        return r.randbytes(r.randint(1, 300))
    if choice == 9:  # invalid base64 alphabets and padding
        bad = r.choice(["a", "ab=", "a===", "-_-_", "YW Jj", "YWJj\r\n", "\u00e9"])
        return json.dumps({k: bad for k in document}).encode()
    if choice == 10:  # unknown fields, nested
        extra = dict(document, extra={"deep": [[[[{"x": r.random()}]]]]})
        return json.dumps(extra).encode()
    if choice == 11:
        return json.dumps([document]).encode()
    if choice == 12 and r.random() < 0.05:  # a body over the 1 MB limit (a few: they are big)
        return json.dumps({**document, "pad": "A" * 1_000_100}).encode()
    return text.encode()  # some valid requests in between


def json_items(r: random.Random, count: int) -> list[Item]:
    items = []
    for _ in range(count):
        route = r.choice(list(BODY_ROUTES))
        name = f"c{r.randrange(10**6)}" if route == "import" else KEY
        body = _mutate_json(r, BODY_ROUTES[route](r))
        method = r.choice(["PUT", "POST"])
        items.append(Item("json", _request(method, f"/v1/key/{route}/{name}", body)))
    return items


def method_items(r: random.Random, count: int) -> list[Item]:
    items = []
    paths = GET_PATHS + [f"/v1/key/{route}/{KEY}" for route in BODY_ROUTES]
    for _ in range(count):
        method = r.choice(METHODS)
        path = r.choice([*paths, "/v1/key/create/c1", "/v1/key/delete/c2"])
        body = b'{"plaintext":"aGk="}' if r.random() < 0.3 else b""
        items.append(Item("methods", _request(method, path, body), head=method == "HEAD"))
    return items


def _mutate_path(r: random.Random, path: str) -> str:
    choice = r.randrange(12)
    if choice == 0:
        return path.replace("/", "//", r.randint(1, 3))
    if choice == 1:
        i = r.randrange(1, len(path) + 1)
        return path[:i] + r.choice(["/./", "/../", "/..", "/.", "%2e%2e/", "%2F"]) + path[i:]
    if choice == 2:
        return "".join(f"%{ord(c):02X}" if r.random() < 0.3 else c for c in path)
    if choice == 3:
        return (
            path + "?" + "&".join(f"q{i}=%{r.randrange(256):02x}" for i in range(r.randint(1, 20)))
        )
    if choice == 4:
        return path + r.choice(["%00", "%ff", "%zz", "%", "\x7f", "%c0%af", "%e2%80%ae"])
    if choice == 5:
        return path + "/" + "a" * r.choice([100, 1000, 3000])
    if choice == 6:
        return r.choice(["http://localhost", "https://evil", "//evil"]) + path
    if choice == 7:
        return path.upper()
    if choice == 8:
        return path.rstrip("/") + r.choice(["", "/", "*", "/*", "#frag", ";x=1"])
    if choice == 9:
        return r.choice(["*", "", "/", "/v1", "/v1/", "/v2/key/create/x", "/v1/key/bulk/decrypt/x"])
    if choice == 10:
        return path + "/" + "é" + "\u202e"
    return path + "/" + "/".join(r.choice(["..", ".", "x", ""]) for _ in range(r.randint(1, 6)))


def path_items(r: random.Random, count: int) -> list[Item]:
    items = []
    for _ in range(count):
        # creates are rare: each one is two fsyncs, the slowest thing a request can do here
        route = r.choice(
            ["describe", "list", "encrypt", "generate", "hmac", "system"] * 4 + ["create"]
        )
        if route == "system":
            method, path, body = "GET", r.choice(GET_PATHS), b""
        elif route in ("describe", "list"):
            method, path, body = "GET", f"/v1/key/{route}/{KEY}", b""
        elif route == "create":
            method, path, body = "PUT", f"/v1/key/create/c{r.randrange(10**6)}", b""
        else:
            method, path = "PUT", f"/v1/key/{route}/{KEY}"
            body = json.dumps(BODY_ROUTES[route](r)).encode()
        mutated = _mutate_path(r, path).encode("utf-8", "replace").decode("latin-1")
        items.append(Item("paths", _request(method, mutated, body)))
    return items


def _junk_header(r: random.Random) -> str:
    choice = r.randrange(13)
    if choice == 0:
        return f"X-Long: {'v' * r.choice([1000, 6000])}\r\n"
    if choice == 1:
        return "".join(f"X-H{i}: {i}\r\n" for i in range(r.randint(10, 90)))
    if choice == 2:
        return "Host: other\r\n"
    if choice == 3:
        kind = r.choice(["text/html", "application/json; charset=utf-16", "", "x/" * 50])
        return f"Content-Type: {kind}\r\n"
    if choice == 4:
        return "Expect: 100-continue\r\n"
    if choice == 5:
        return f"X-Bin: {''.join(chr(r.randrange(128, 256)) for _ in range(20))}\r\n"
    if choice == 6:
        return "Connection: close\r\n"
    if choice == 7:
        return "Connection: upgrade\r\nUpgrade: h2c\r\n"
    if choice == 8:
        return "Bad Header: x\r\n"
    if choice == 9:
        return "X-Tab:\tvalue\t\r\n"
    if choice == 10:
        return f"Accept-Encoding: {'gzip, ' * 100}\r\n"
    if choice == 11:
        return "X-Forwarded-For: 1.2.3.4\r\nX-Real-Ip: ::1\r\nForwarded: for=evil\r\n"
    return "X-Empty:\r\n"


def header_items(r: random.Random, count: int) -> list[Item]:
    items = []
    for _ in range(count):
        headers = "".join(_junk_header(r) for _ in range(r.randint(1, 3)))
        if r.random() < 0.5:
            path, body, method = "/v1/status", b"", "GET"
        else:
            path, method = f"/v1/key/encrypt/{KEY}", "PUT"
            body = json.dumps(BODY_ROUTES["encrypt"](r)).encode()
        items.append(Item("headers", _request(method, path, body, headers)))
    return items


def framing_items(r: random.Random, count: int) -> list[Item]:
    gen = f"PUT /v1/key/generate/{KEY} HTTP/1.1\r\nHost: localhost\r\n"
    body = b'{"context":"YWJj"}'
    templates = [
        lambda: gen + f"Content-Length: {r.randint(0, len(body) - 1)}\r\n\r\n",  # shorter
        lambda: gen + f"Content-Length: {len(body) + r.randint(1, 10**6)}\r\n\r\n",  # longer
        lambda: gen + "Content-Length: -1\r\n\r\n",
        lambda: gen + f"Content-Length: {'9' * r.randint(20, 120)}\r\n\r\n",
        lambda: gen + "Content-Length: 5\r\nContent-Length: 7\r\n\r\n",
        lambda: gen + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        lambda: gen + f"Transfer-Encoding: chunked\r\n\r\n{'1' * 100}\r\n",
        lambda: gen + 'Transfer-Encoding: chunked\r\n\r\n12\n{"context":"YWJj"}\n0\n\n',
        lambda: gen + "Transfer-Encoding: chunked\r\n\r\n-5\r\n",
        lambda: gen + 'Transfer-Encoding: chunked\r\n\r\n5;ext="x"\r\n{"con\r\n',
        lambda: (
            gen
            + "Transfer-Encoding: chunked\r\n\r\n"
            + '12\r\n{"context":"YWJj"}\r\n0\r\nX-Trailer: t\r\n\r\n'
        ),
        lambda: gen + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        lambda: gen + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        lambda: gen + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        lambda: gen.replace("\r\n", "\r") + "\r",
        lambda: gen.replace("\r\n", "\n") + "\n",
        lambda: "GET /v1/status HTTP/1.0\r\n\r\n",
        lambda: "GET /v1/status HTTP/2.0\r\nHost: x\r\n\r\n",
        lambda: "GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n",
        lambda: "GET /v1/status\r\n\r\n",
        lambda: "GET /v1/status HTTP/1.1\r\nHost: x\r\n folded: y\r\n\r\n",
        lambda: "GET  /v1/status  HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: " GET /v1/status HTTP/1.1\r\n\r\n",
        lambda: "\r\n\r\n\r\nGET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: "GET /v1/status HTTP/1.1\r\nHost: x\r\n",  # no blank line, then EOF
        lambda: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        lambda: "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + "GET /v1/sta",
    ]
    items = []
    for _ in range(count):
        text = r.choice(templates)()
        extra = body[: r.randint(0, len(body))] if r.random() < 0.5 else b""
        items.append(Item("framing", text.encode("latin-1") + extra, solo=True))
    return items


def raw_items(r: random.Random, count: int) -> list[Item]:
    items = []
    for _ in range(count):
        choice = r.randrange(4)
        if choice == 0:
            data = r.randbytes(r.randint(1, 2000))
        elif choice == 1:
            data = bytes(r.randrange(32, 127) for _ in range(r.randint(1, 500)))
        elif choice == 2:
            data = b"GET /v1/status HTTP/1.1\r\n" + r.randbytes(r.randint(1, 500))
        else:
            data = b"\x00" * r.randint(1, 100) + b"\r\n\r\n"
        items.append(Item("raw", data, solo=True))
    return items


def build(seed: int = 10, scale: int = 1) -> list[Item]:
    """At least 10 000 requests for ``scale=1``; keep-alive items are shuffled together."""
    r = random.Random(seed)
    shared = (
        json_items(r, 5000 * scale)
        + method_items(r, 1200 * scale)
        + path_items(r, 2000 * scale)
        + header_items(r, 1300 * scale)
    )
    r.shuffle(shared)
    solo = framing_items(r, 350 * scale) + raw_items(r, 150 * scale)
    return shared + solo
