"""The SDK transport's kms-go behaviour against real local HTTPS servers with scripted answers.

Each server is a real TLS socket server (``http.server`` in a thread); its answers are a script
of status codes, so retries (503), benching (5xx) and final answers (4xx, 501) are observable by
counting the requests each server received.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kes_flask.auth.certs import certificate_pem, private_key_pem
from kes_flask.client import KesConnectionError, KesServerError, KeyNotFound
from kes_flask.client.client import KesClient
from kes_flask.client.environment import SettingsError, from_environment
from kes_flask.client.metrics import parse_metrics
from kes_flask.client.transport import normalize_endpoint, split_endpoints
from tests.certificates import make_certificate

FAST = (0.001, 0.002)


class ScriptedServer:
    """Answers ``GET /v1/status`` with the next status of ``script`` (then 200 forever)."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.script: list[int] = []
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.requests += 1
                status = outer.script.pop(0) if outer.script else 200
                if status == 200:
                    body = json.dumps({"version": "scripted", "uptime": 1}).encode()
                else:
                    body = json.dumps({"message": "key does not exist" if status == 404 else "x"})
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("transport")
    key, cert = make_certificate("localhost", ips=["127.0.0.1"], dns=["localhost"])
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate_pem(cert))
    key_file.write_bytes(private_key_pem(key))
    return str(cert_file), str(key_file)


@pytest.fixture
def servers(tls_files) -> Iterator[list[ScriptedServer]]:
    started = [ScriptedServer(*tls_files) for _ in range(2)]
    yield started
    for server in started:
        server.close()


def client(endpoints: list[str], tls_files) -> KesClient:
    return KesClient(
        endpoints, api_key="kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc",
        ca_file=tls_files[0], retry_delay=FAST,
    )  # fmt: skip


def test_503_is_retried_twice(servers, tls_files):
    one = servers[0]
    one.script = [503, 503]
    assert client([one.endpoint], tls_files).status()["version"] == "scripted"
    assert one.requests == 3
    one.script, one.requests = [503, 503, 503], 0
    with pytest.raises(KesServerError) as failed:
        client([one.endpoint], tls_files).status()
    assert failed.value.status == 503 and one.requests == 3  # at most 2 retries


def test_4xx_and_501_are_final(servers, tls_files):
    one, two = servers
    for status in (404, 501):
        one.script = [status]
        one.requests = two.requests = 0
        both = client([one.endpoint, two.endpoint], tls_files)  # loopback: the first one first
        with pytest.raises(KesServerError) as answer:
            both.status()
        assert answer.value.status == status and (one.requests, two.requests) == (1, 0)
        if status == 404:
            assert isinstance(answer.value, KeyNotFound)


def test_a_5xx_endpoint_is_benched_and_the_other_answers(servers, tls_files):
    one, two = servers
    one.script = [502]
    both = client([one.endpoint, two.endpoint], tls_files)
    for _ in range(10):  # whichever comes first, every call succeeds; 'one' fails once, then rests
        assert both.status()["version"] == "scripted"
    assert one.requests <= 1 and two.requests >= 9
    assert one.endpoint in both.transport._benched


def test_every_endpoint_benched_gets_one_more_round(servers, tls_files):
    one, two = servers
    both = client([one.endpoint, two.endpoint], tls_files)
    both.transport._bench(one.endpoint)
    both.transport._bench(two.endpoint)
    assert both.status()["version"] == "scripted"


def test_nothing_listening_is_a_connection_error_after_retries(tls_files, dead_port):
    dead = f"https://127.0.0.1:{dead_port}"
    with pytest.raises(KesConnectionError) as down:
        client([dead], tls_files).status()
    assert str(down.value) == (
        f'kes: connection error: Get "{dead}/v1/status": '
        f"dial tcp 127.0.0.1:{dead.rsplit(':', 1)[1]}: connect: connection refused"
    )


def test_endpoint_spellings():
    assert normalize_endpoint("h:7373") == "https://h:7373"
    assert normalize_endpoint(" http://h:7373 ") == "https://h:7373"
    assert normalize_endpoint("https://h:7373/") == "https://h:7373"
    assert split_endpoints("a:1,b:2") == ["https://a:1", "https://b:2"]
    with pytest.raises(ValueError, match="no host"):
        split_endpoints("a:1,")


def test_environment_order_and_messages(tmp_path: Path):
    key = "kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc"
    assert from_environment({"KES_API_KEY": key}).endpoints == ["https://127.0.0.1:7373"]
    assert from_environment(
        {"MINIO_KES_SERVER": "x:1", "KES_SERVER": "y:2", "KES_API_KEY": key}
    ).endpoints == ["https://x:1"]
    assert from_environment({"MINIO_KMS_KES_ENDPOINT": "z:3", "MINIO_KMS_KES_API_KEY": key})
    cases = {
        "no certificate file specified. Consider setting MINIO_KES_CERT_FILE": {
            "KES_CLIENT_KEY": "k"
        },
        "no private key file specified. Consider setting MINIO_KES_KEY_FILE": {
            "KES_CLIENT_CERT": "c"
        },
        "parsing API key: kes: invalid API key: invalid length": {"KES_API_KEY": "kes:v1:AAAA"},
        f"reading certificate file: open {tmp_path}/none.crt: no such file or directory": {
            "KES_CLIENT_CERT": f"{tmp_path}/none.crt",
            "KES_CLIENT_KEY": f"{tmp_path}/none.key",
        },
        "invalid server endpoint '': no host. Set MINIO_KES_SERVER or KES_SERVER to host:port": {
            "KES_SERVER": "",
            "KES_API_KEY": key,
        },
    }
    for message, env in cases.items():
        with pytest.raises(SettingsError) as err:
            from_environment(env)
        assert str(err.value) == message


GO_METRICS = """# HELP kes_http_request_success Number of requests served successfully.
# TYPE kes_http_request_success counter
kes_http_request_success{code="200"} 7
kes_http_request_success{code="204"} 1
kes_http_request_error{code="404"} 2
kes_http_request_failure 0
kes_http_request_active 1
kes_http_response_time_bucket{le="0.01"} 5
kes_http_response_time_bucket{le="0.05"} 9
kes_http_response_time_bucket{le="+Inf"} 10
kes_http_response_time_sum 0.1
kes_http_response_time_count 10
kes_log_audit_events 3
kes_log_error_events 0
kes_system_up_time 12.5
kes_system_num_cpu 4
kes_system_num_cpu_used 2
kes_system_num_threads 9
kes_system_mem_heap_used 1.2e+06
kes_system_mem_heap_objects 100
kes_system_mem_stack_used 65536
"""


def test_metrics_are_read_like_kms_go():
    metrics = parse_metrics(GO_METRICS)
    assert (metrics.request_ok, metrics.request_err, metrics.request_n) == (8, 2, 10)
    assert [bound.total_seconds() for bound in metrics.latency_histogram] == [0.01, 0.05]
    assert metrics.up_time.total_seconds() == 12.5 and metrics.heap_alloc == 1_200_000
    assert (metrics.cpus, metrics.used_cpus, metrics.threads, metrics.audit_events) == (4, 2, 9, 3)
