"""``kes metric`` (the Go CLI, parsing strictly with kms-go) against a 3-worker kes-flask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.interop.peers import GoCLI
from tests.kes_server import PKI, KesServer, config_yaml

WORKERS = 3
REQUESTS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: PKI, go_kes: Path):
    workdir = tmp_path_factory.mktemp("metric-flask")
    server = KesServer(workdir, pki, config_yaml(pki, str(workdir / "keys")), workers=WORKERS)
    yield server.start()
    server.stop()


def test_kes_metric_reports_the_totals_of_all_workers(server: KesServer, go_cli: GoCLI, pki):
    server.client("admin").create_key("metric")
    for _ in range(REQUESTS):  # a fresh connection each: the requests spread over the workers
        client = server.client("admin")
        client.generate_key("metric")
        client.close()
    first = json.loads(
        go_cli.first_line("metric", server=server.endpoint, api_key=str(pki["admin"].api_key))
    )
    assert first["kes_http_request_success"] == REQUESTS + 1
    assert first["kes_http_response_time"]["10000000000"] == REQUESTS + 1  # the 10 s bucket
    assert first["kes_http_request_error"] == 0
