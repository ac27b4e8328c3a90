"""`log [--audit | --error] [--json]`: follow the server's audit or error log (cli.md §10)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from kes_flask.cli.common import (
    CommandError,
    PflagCommand,
    console,
    format_go_duration,
    insecure_option,
    rfc3339,
    write,
)
from kes_flask.cli.connect import connect
from kes_flask.client import AuditEvent, ErrorEvent, KesError, LogStream

AUDIT_HEADER = (
    "Time        Status    Identity                IP                 API"
    "                               Latency"
)


def round_latency(value: timedelta) -> timedelta:
    """kes' rounding for display: 100 ms above 1 s, 1 ms above 10 ms, and so on."""
    micros = value / timedelta(microseconds=1)
    for threshold, step in ((1e6, 1e5), (1e4, 1e3), (1e3, 100), (10, 1)):
        if micros >= threshold:
            return timedelta(microseconds=round(micros / step) * step)
    return value


def audit_line(event: AuditEvent) -> str:
    clock = event.time
    latency = format_go_duration(round_latency(event.response_time))
    return (
        f"{clock.hour:02d}:{clock.minute:02d}:{clock.second:02d}    {event.status:<5}     "
        f"{event.identity[:20]:<20}    {event.ip or '<unknown>':<15}    {event.path:<30}    "
        f"{latency}\n"
    )


def audit_json(event: AuditEvent) -> str:
    body = {
        "time": rfc3339(event.time),
        "request": {"ip": event.ip, "path": event.path, "identity": event.identity},
        "response": {
            "code": event.status,
            "time": round(event.response_time / timedelta(microseconds=1) * 1000),
        },
    }
    return json.dumps(body, separators=(",", ":")) + "\n"


class _LogCommand(PflagCommand):
    """``--audit`` given on the command line is told apart from its default."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["audit_given"] = any(a == "--audit" or a.startswith("--audit=") for a in args)
        return super().parse_args(ctx, args)


@click.command("log", cls=_LogCommand, hint_path="key import")  # sic, Decision C15
@click.option("--audit", is_flag=True, help="Print audit logs. (default)")
@click.option("--error", "errors", is_flag=True, help="Print error logs.")
@click.option("--json", "as_json", is_flag=True, help="Print log events as JSON.")
@insecure_option
@click.argument("arguments", nargs=-1)
@click.pass_context
def log(
    ctx: click.Context,
    audit: bool,
    errors: bool,
    as_json: bool,
    insecure: bool,
    arguments: tuple[str, ...],
) -> None:
    """Print error and audit log events (until interrupted)."""
    if arguments:
        raise CommandError(ctx.command.hint(ctx, "too many arguments"))  # type: ignore[attr-defined]
    if errors and ctx.meta.get("audit_given"):
        raise CommandError("cannot display audit and error logs at the same time")
    del audit  # the default
    client = connect(ctx, insecure)
    stream: LogStream[AuditEvent] | LogStream[ErrorEvent]
    try:
        stream = client.error_log() if errors else client.audit_log()
    except KesError as err:
        raise CommandError(f"failed to connect to error log: {err}") from None  # sic
    try:
        with stream:
            if not errors and not as_json:
                header = AUDIT_HEADER
                if console(ctx).styled():
                    header = f"\x1b[1;4m{header}\x1b[0m"
                write(header + "\n")
            for event in stream:
                if isinstance(event, ErrorEvent):
                    line = (
                        json.dumps({"message": event.message}, separators=(",", ":")) + "\n"
                        if as_json
                        else event.message + "\n"
                    )
                else:
                    line = audit_json(event) if as_json else audit_line(event)
                write(line)
                sys.stdout.flush()
    except KeyboardInterrupt:
        raise click.exceptions.Exit(0 if not as_json else 1) from None
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None
