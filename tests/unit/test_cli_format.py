"""Go-formatted output pieces of the client commands (cli.md §2, §8, §10) and completion."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kes_flask.cli.common import format_go_duration, format_time, go_time_text
from kes_flask.cli.completion import complete, completion_requested, install
from kes_flask.cli.log import audit_line, round_latency
from kes_flask.cli.main import main, version_text
from kes_flask.cli.status import format_size, format_uptime
from kes_flask.client import AuditEvent


@pytest.mark.parametrize(
    "size, text",
    [(0, "0B"), (512, "512.0B"), (8100, "8.1KB"), (12345678, "12.3MB"), (2 * 10**9, "2.0GB")],
)
def test_sizes_as_aead_dev_mem_formats_them(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize(
    "seconds, text",
    [
        (5, "5 seconds"),
        (90, "2 minutes"),
        (7200.0, "2 hours"),
        (3 * 86400 + 5 * 3600, "3 days 5 hours"),
    ],
)
def test_uptime(seconds, text):
    assert format_uptime(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    "value, text",
    [
        (timedelta(0), "0s"),
        (timedelta(microseconds=850), "850µs"),
        (timedelta(milliseconds=3), "3ms"),
        (timedelta(milliseconds=1200), "1.2s"),
        (timedelta(seconds=15), "15s"),
        (timedelta(minutes=1), "1m0s"),
        (timedelta(hours=1, seconds=30), "1h0m30s"),
    ],
)
def test_go_durations(value, text):
    assert format_go_duration(value) == text


def test_latency_rounding_and_the_audit_line():
    assert round_latency(timedelta(microseconds=1234)) == timedelta(microseconds=1200)
    assert round_latency(timedelta(microseconds=12345)) == timedelta(milliseconds=12)
    event = AuditEvent(
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        path="/v1/key/create/k",
        identity="ab" * 32,
        status=200,
        response_time=timedelta(microseconds=1234),
    )
    assert audit_line(event) == (
        f"03:04:05    200       {'ab' * 10}    <unknown>          /v1/key/create/k"
        f"{' ' * 14}    1.2ms\n"
    )


def test_times():
    assert format_time(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01 00:00:00"
    assert go_time_text("2026-12-01T21:55:50.514055200Z") == "2026-12-01T21:55:50.5140552Z"
    assert go_time_text("2026-12-01T21:55:50.000Z") == "2026-12-01T21:55:50Z"
    assert go_time_text(None) == "0001-01-01T00:00:00Z"


def test_version_block_has_the_kes_layout(capsys):
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:11] for line in lines] == [
        "Version    ",
        "Runtime    ",
        "License    ",
        "Copyright  ",
    ]
    assert lines == version_text().splitlines() and "compiler=" in lines[1]


def test_update_is_refused_with_the_way_to_upgrade(capsys):
    assert main(["update"]) == 1
    assert capsys.readouterr().err == (
        "Error: self-update is not supported; upgrade the package with pip\n"
    )


def test_completion_table():
    assert completion_requested({"SHELL": "/bin/bash", "COMP_LINE": "kes key c"})
    assert not completion_requested({"SHELL": "/bin/fish", "COMP_LINE": "kes"})
    assert complete("kes key c") == ["create"]
    assert complete("kes key ") == [
        "create",
        "import",
        "info",
        "ls",
        "rm",
        "encrypt",
        "decrypt",
        "dek",
    ]
    assert complete("kes st") == ["status"]
    assert complete("kes status --") == ["--short", "--api", "--json", "--color", "--insecure"]
    assert complete("kes identity new --e") == ["--expiry", "--encrypt"]


def test_auto_completion_installs_once(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match="no such file or directory"):
        install("kes-flask", {"SHELL": "/bin/bash"})
    (tmp_path / ".bashrc").write_text("# mine\n")
    text = install("kes-flask", {"SHELL": "/bin/bash"})
    assert text.startswith(f"Added completion to '{tmp_path}/.bashrc'")
    line = (tmp_path / ".bashrc").read_text().splitlines()[1]
    assert line.startswith("complete -o default -C /") and line.endswith(" kes-flask")
    assert install("kes-flask", {"SHELL": "/bin/bash"}) == "Completion is already installed.\n"
    with pytest.raises(ValueError, match="auto-completion for 'fish' is not available"):
        install("kes-flask", {"SHELL": "/usr/bin/fish"})
