"""Runs last in this directory: every line every server of the reliability run wrote (error log,
audit log, gunicorn's own lines) is scanned for every secret the run used or created — API keys,
private keys, key material in the keystores, plaintexts — in raw, hex and base64 spellings."""

from __future__ import annotations

from tests.reliability.conftest import RunRecord


def scan(lines: list[str], secrets: set[str]) -> list[str]:
    text = "\n".join(lines)
    leaked = [secret for secret in secrets if secret in text]  # one pass per secret, in C
    return [f"{s[:6]}… in {line[:200]!r}" for s in leaked for line in lines if s in line]


def test_the_scan_finds_a_planted_secret(run_record: RunRecord):
    assert run_record.secrets, "the run registered no secrets: nothing would be found"
    secret = next(iter(run_record.secrets))
    assert scan(["ok", f"level=ERROR msg=oops value={secret}"], {secret})


def test_no_secret_in_any_log_line_of_the_run(run_record: RunRecord):
    run_record.key_material()
    lines = run_record.log_lines()
    run_record.figure(
        "secrets in logs",
        servers=len(run_record.servers),
        log_lines=len(lines),
        log_bytes=sum(len(line) + 1 for line in lines),
        secrets_checked=len(run_record.secrets),
        found=0,
    )
    if not run_record.servers:
        return  # run alone: the other reliability tests started no server to scan
    assert lines, "the servers of the run wrote no log line at all"
    found = scan(lines, run_record.secrets)
    run_record.figure("secrets in logs", found=len(found))
    assert found == [], "\n".join(found[:20])
