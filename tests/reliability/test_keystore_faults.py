"""The keystore fails under a running server — permissions taken away, disk full — and comes
back: create answers 502, /v1/ready turns non-200 within one ping interval, and both recover
without a restart (issue #10, acceptance 3)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.kes_server import PKI, config_yaml
from tests.reliability.conftest import RunRecord
from tests.reliability.servers import (
    PROBE_INTERVAL,
    Api,
    WrappedServer,
    tmpfs_prefix,
    unprivileged_prefix,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE = PROBE_INTERVAL + 20.0  # one ping interval, plus room for a loaded machine


@pytest.fixture
def wrapped(tmp_path_factory, pki: PKI, run_record: RunRecord):
    servers: list[WrappedServer] = []

    def start(prefix: list[str], keys: Path) -> WrappedServer:
        workdir = tmp_path_factory.mktemp("fault")
        server = WrappedServer(workdir, pki, config_yaml(pki, str(keys)), prefix=prefix)
        servers.append(server)
        run_record.keystores.append(keys)  # the server itself is recorded when it starts
        return server.start()

    yield start
    for server in servers:
        server.stop()


def ready_status(api: Api) -> int:
    return api.call("GET", "/v1/ready").status_code


def recovered(api: Api, name: str) -> bool:
    """Ready on several fresh connections in a row (they spread over the workers), and a key
    can be created again."""
    if any(ready_status(api) != 200 for _ in range(6)):
        return False
    return api.call("PUT", f"/v1/key/create/{name}").status_code in (200, 400)


def test_permission_loss_is_502_and_not_ready_then_recovers(
    wrapped, tmp_path: Path, pki: PKI, run_record: RunRecord
):
    keys = tmp_path / "keys"
    server = wrapped(unprivileged_prefix(), keys)
    api = Api(server, pki)
    assert api.call("PUT", "/v1/key/create/before").status_code == 200
    assert ready_status(api) == 200

    keys.chmod(0o000)
    try:
        response = api.call("PUT", "/v1/key/create/during")
        assert (response.status_code, response.json()) == (502, {"message": "failed to create key"})
        to_unready = wait_until(lambda: ready_status(api) != 200, DEADLINE, "/v1/ready non-200")
        wait_until(
            lambda: api.call("GET", "/v1/status").json().get("keystore_unreachable") is True,
            DEADLINE,
            "/v1/status keystore_unreachable",
        )
        listing = api.call("GET", "/v1/key/list/*")
        assert (listing.status_code, listing.json()) == (502, {"message": "failed to list keys"})
        # held past a ping: the workers' background probes mark the keystore offline too
        server.wait_for("keystore is offline", timeout=DEADLINE)
    finally:
        keys.chmod(0o755)
    # the operator's error log names the request, never a secret
    server.wait_for("failed to create key")
    line = next(text for text in server.stderr if "failed to create key" in text)
    assert "/v1/key/create/during" in line and pki["admin"].identity in line
    assert "Permission denied" in line

    recovery = wait_until(
        lambda: recovered(api, "after"),
        DEADLINE,
        "recovery after chmod 755",
    )
    assert api.call("GET", "/v1/key/describe/after").status_code == 200
    assert server.process.poll() is None
    run_record.figure(
        "keystore permission loss",
        seconds_to_ready_non_200=round(to_unready, 2),
        seconds_to_recover=round(recovery, 2),
        ping_interval_seconds=PROBE_INTERVAL,
    )
    api.close()


def test_disk_full_is_502_and_not_ready_then_recovers(
    wrapped, tmp_path: Path, pki: PKI, run_record: RunRecord
):
    keys = tmp_path / "keys"
    keys.mkdir()
    server = wrapped(tmpfs_prefix(keys, "96k"), keys)
    api = Api(server, pki)
    assert ready_status(api) == 200
    created = []
    for number in itertools.count():  # fill the tmpfs through the API, one page per key
        response = api.call("PUT", f"/v1/key/create/fill-{number}")
        if response.status_code != 200:
            break
        created.append(f"fill-{number}")
        assert number < 200, "the tmpfs never filled up"
    assert (response.status_code, response.json()) == (502, {"message": "failed to create key"})
    to_unready = wait_until(lambda: ready_status(api) != 200, DEADLINE, "/v1/ready non-200")
    server.wait_for("failed to create key")
    assert any("No space left on device" in line for line in server.stderr)
    # reads still work while the disk is full
    assert api.call("GET", f"/v1/key/describe/{created[0]}").status_code == 200
    # (the permission test holds its fault past a background probe; this one need not)

    for name in created[-6:]:  # the operator frees space
        assert api.call("DELETE", f"/v1/key/delete/{name}").status_code == 200
    recovery = wait_until(
        lambda: recovered(api, "after"),
        DEADLINE,
        "recovery after freeing space",
    )
    assert api.call("GET", "/v1/key/describe/after").status_code == 200
    assert server.process.poll() is None
    run_record.figure(
        "keystore disk full (tmpfs)",
        keys_until_full=len(created),
        seconds_to_ready_non_200=round(to_unready, 2),
        seconds_to_recover=round(recovery, 2),
    )
    api.close()
