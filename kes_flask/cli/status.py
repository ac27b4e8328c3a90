"""`status [--api] [--json] [-s]` and `metric [--rate D]` (cli.md §8, §9)."""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import click

from kes_flask.cli.common import (
    CommandError,
    color_option,
    console,
    format_go_duration,
    insecure_option,
    json_option,
    parse_go_duration,
    with_help_hint,
    write,
)
from kes_flask.cli.connect import connect, failing_as
from kes_flask.client import API, Client, Metrics, Status

_SIZE_UNITS = (("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))


def format_size(size: int) -> str:
    """``aead.dev/mem`` ``FormatSize(n, 'D', 1)``: ``512.0B``, ``12.3MB``, ``8.1KB``."""
    if size == 0:
        return "0B"
    name, unit = next(((n, u) for n, u in _SIZE_UNITS if size >= u), ("B", 1))
    whole, rest = divmod(size, unit)
    if rest == 0:
        return f"{whole}.0{name}"
    fraction = f"{rest / unit:.1f}"
    return f"{whole}{fraction[1:] if fraction.startswith('0') else '.0'}{name}"


def format_uptime(uptime: timedelta) -> str:
    seconds = uptime.total_seconds()
    hours = seconds / 3600
    if seconds > 86400:
        return f"{hours / 24:.0f} days {hours % 24:.0f} hours"
    if seconds > 3600:
        return f"{hours:.0f} hours"
    if seconds > 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def status_json(status: Status) -> dict[str, object]:
    """The status as the Go client re-encodes it: every zero field omitted."""
    fields: dict[str, object] = {
        "version": status.version,
        "os": status.os,
        "arch": status.arch,
        "uptime": round(status.uptime.total_seconds()),
        "num_cpu": status.num_cpu,
        "num_cpu_used": status.num_cpu_used,
        "mem_heap_used": status.mem_heap_used,
        "mem_stack_used": status.mem_stack_used,
        "keystore_latency": status.keystore_latency,
        "keystore_unreachable": status.keystore_unreachable,
        "keystore_unavailable": status.keystore_unavailable,
    }
    return {name: value for name, value in fields.items() if value}


def api_json(api: API) -> dict[str, object]:
    fields: dict[str, object] = {
        "method": api.method,
        "path": api.path,
        "max_body": api.max_body,
        "timeout": int(api.timeout.total_seconds()),
    }
    return {name: value for name, value in fields.items() if value}


def _dump(value: object, indent: bool) -> str:
    if indent:
        return json.dumps(value, indent=2) + "\n"
    return json.dumps(value, separators=(",", ":")) + "\n"


def _status_text(status: Status, short: bool) -> str:
    text = f"● {status.endpoint.removeprefix('https://')}\n"
    if short:
        return text
    latency = timedelta(milliseconds=round(status.latency.total_seconds() * 1000))
    rows = [
        ("Version", status.version),
        ("Uptime", format_uptime(status.uptime)),
        ("Latency", format_go_duration(latency)),
        ("OS", status.os),
        ("CPUs", f"{status.num_cpu_used} {status.arch}"),
    ]
    text += "".join(f"  {label:<8} {value}\n" for label, value in rows)
    text += f"  {'Memory':<8}\n"
    text += f"{'·':>3} {'Heap':<6} {format_size(status.mem_heap_used)}\n"
    text += f"{'·':>3} {'Stack':<6} {format_size(status.mem_stack_used)}\n"
    return text


@click.command("status")
@insecure_option
@click.option("-s", "--short", is_flag=True, help="Print a short summary.")
@click.option("--api", "with_api", is_flag=True, help="List all server APIs.")
@json_option
@color_option
@click.argument("arguments", nargs=-1)
@click.pass_context
def status(
    ctx: click.Context,
    insecure: bool,
    short: bool,
    with_api: bool,
    as_json: bool,
    arguments: tuple[str, ...],
    **_: object,
) -> None:
    """Print server status."""
    if arguments:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    client = connect(ctx, insecure)
    with failing_as():
        state = client.status()
        if state.keystore_unreachable and not state.keystore_unavailable:
            raise CommandError("kes: keystore is unreachable but not unavailable")
        apis = client.apis() if with_api else []
    indent = console(ctx).is_terminal() and not short
    if as_json:
        value: object = [api_json(api) for api in apis] if with_api else status_json(state)
        write(_dump(value, indent))
        return
    text = _status_text(state, short)
    if with_api:
        text += f"\n  {'Method':<7} {'API':<28} Timeout\n"
        for api in apis:
            timeout = format_go_duration(api.timeout) if api.timeout else "Inf"
            text += f"  {api.method:<7} {api.path:<28} {timeout}\n"
    write(text)


# --- metric --------------------------------------------------------------------------------------


def metrics_json(metrics: Metrics) -> dict[str, object]:
    """kms-go's ``Metric`` as ``json.Encoder`` writes it: durations in nanoseconds."""
    histogram = {
        str(round(bound.total_seconds() * 1e9)): count
        for bound, count in metrics.latency_histogram.items()
    }
    return {
        "kes_http_request_success": metrics.request_ok,
        "kes_http_request_error": metrics.request_err,
        "kes_http_request_failure": metrics.request_fail,
        "kes_http_request_active": metrics.request_active,
        "kes_log_audit_events": metrics.audit_events,
        "kes_log_error_events": metrics.error_events,
        "kes_http_response_time": dict(sorted(histogram.items())),
        "kes_system_up_time": round(metrics.up_time.total_seconds() * 1e9),
        "kes_system_num_cpu": metrics.cpus,
        "kes_system_num_cpu_used": metrics.used_cpus,
        "kes_system_num_threads": metrics.threads,
        "kes_system_mem_heap_used": metrics.heap_alloc,
        "kes_system_mem_heap_objects": metrics.heap_objects,
        "kes_system_mem_stack_used": metrics.stack_alloc,
    }


def _percent(part: int, total: int) -> str:
    return f"{100 * part / total:.2f}%" if total else "NaN%"


def _table(metrics: Metrics, previous: Metrics | None, rate: float) -> str:
    total = metrics.request_n
    per_second = (total - (previous.request_n if previous else total)) / rate
    buckets = sorted(metrics.latency_histogram.items())
    count = buckets[-1][1] if buckets else 0
    average = sum(b.total_seconds() for b, _ in buckets) / len(buckets) if count else 0.0
    latency = format_go_duration(timedelta(milliseconds=round(average * 1000)))
    lines = [
        "",
        "Request    OK [2xx]       Err [4xx]       Err [5xx]      Req/s        Latency",
        f"{metrics.request_ok:19d}{metrics.request_err:16d}{metrics.request_fail:16d}"
        f"{per_second:11.2f}{latency:>15}",
        f"{_percent(metrics.request_ok, total):>35}{_percent(metrics.request_err, total):>33}"
        f"{_percent(metrics.request_fail, total):>33}",
        "",
        "System       UpTime            Heap           Stack       CPUs        Threads",
        f"{format_go_duration(timedelta(seconds=round(metrics.up_time.total_seconds()))):>19}"
        f"{format_size(metrics.heap_alloc):>16}{format_size(metrics.stack_alloc):>16}"
        f"{metrics.used_cpus:11d}{metrics.threads:15d}",
        "",
    ]
    return "\n".join(lines) + "\n"


def _fetch(client: Client) -> Metrics:
    with failing_as("failed to fetch metrics: "):
        return client.metrics()


@click.command("metric")
@click.option("--rate", default="5s", metavar="<duration>", help="Scrape rate. (default: 5s)")
@insecure_option
@click.argument("arguments", nargs=-1)
@click.pass_context
def metric(ctx: click.Context, rate: str, insecure: bool, arguments: tuple[str, ...]) -> None:
    """Print server metrics (until interrupted)."""
    if arguments:
        raise CommandError(with_help_hint(ctx, "too many arguments"))
    try:
        interval = parse_go_duration(rate).total_seconds()
    except ValueError as err:
        reason = f'invalid argument "{rate}" for "--rate" flag: {err}'
        raise CommandError(with_help_hint(ctx, reason)) from None
    interval = max(interval, 0.1)
    client = connect(ctx, insecure)
    terminal = console(ctx).is_terminal()
    previous: Metrics | None = None
    try:
        if terminal:
            sys.stdout.write("\x1b[?25l")
        while True:
            if terminal:
                try:
                    metrics = client.metrics()
                except Exception:  # noqa: BLE001 - the live view ignores fetch errors
                    time.sleep(interval)
                    continue
                if previous is not None:
                    write("\x1b[2K\x1b[F\r" * 8)
                write(_table(metrics, previous, interval))
                previous = metrics
            else:
                write(json.dumps(metrics_json(_fetch(client)), separators=(",", ":")) + "\n")
                sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if terminal:
            sys.stdout.write("\x1b[?25h")
