"""kes-flask side by side with Go KES v0.24.0: one command, one machine, one run.

    python bench/compare.py [--quick] [--seconds 5] [--rounds 3] [--no-go] [--no-write]

Builds (or reuses) Go KES from the interop cache (tests/interop/peers.py) and bombardier, starts
both servers on the same config (one FS keystore, one admin Ed25519 API-key identity, whose
client certificate bombardier presents), pins each server and the load generator to fixed CPUs,
and alternates the servers round by round so that noise from the rest of the machine hits both.
Measures req/s, p50 and p99 of generate, decrypt, describe and status on 16 keep-alive
connections, full TLS handshakes per second (a new connection per request), p99 at a fixed rate
of half kes-flask's peak, RSS idle and after load, cold start, and one worker's memory over many
requests. Prints the tables and writes docs/benchmarks.md (keeping its other sections) and
docs/benchmarks.png. Without ``go`` (and no cached binary) it benchmarks kes-flask alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import metrics_cost, procs  # noqa: E402
from bench.load import BOMBARDIER_VERSION, find_bombardier  # noqa: E402
from bench.render import chart, cold_start_table, merge_document, render  # noqa: E402
from bench.report import Report  # noqa: E402
from bench.scenarios import (  # noqa: E402
    Settings,
    cold_starts,
    cpu_plan,
    memory_study,
    run_scenario,
)
from tests.interop import peers  # noqa: E402
from tests.kes_server import PKI, config_yaml  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
TITLE = "# Benchmarks"
INTRO = (
    "Measured with `make bench` (`python bench/compare.py`; `--quick` for a smoke run, "
    "`--help` for durations). Both servers run the same config on one FS keystore; bombardier "
    f"{BOMBARDIER_VERSION} sends the requests with the admin's Ed25519 API-key client "
    "certificate. In the one-core scenario the server is pinned to CPU 0 and bombardier to "
    "CPU 1; with two cores the servers get CPUs 0-1 and, on a two-CPU machine, bombardier "
    "shares them. The servers alternate round by round; figures are medians over rounds and "
    "ratios compare figures of the same run. The machine may be shared: read the load average."
)


def go_kes(allowed: bool, say) -> Path | None:
    if not allowed:
        return None
    cached = peers.cache_dir() / f"kes-{peers.KES_VERSION}" / "kes"
    if cached.exists() or peers.go_binary() is not None:
        return peers.build_kes()
    say("go is not installed and no Go KES binary is cached: benchmarking kes-flask alone")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: short, one round")
    parser.add_argument("--seconds", type=float, help="seconds per measured run (5; quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per scenario (3; quick 1)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--cold-starts", type=int, default=3, help="starts per server and core")
    parser.add_argument(
        "--memory-requests", type=int, help="requests of the memory study (100000; quick 5000)"
    )
    parser.add_argument("--cores", default="1,2", help="scenarios: server cores, e.g. 1,2")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for kes-flask (repeatable), e.g. KES_FLASK_THREADS=4",
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="only measure cold starts; print, write nothing"
    )
    parser.add_argument("--no-go", action="store_true", help="benchmark kes-flask alone")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory study")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file to write")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="re-render a run saved with --json; no load"
    )
    args = parser.parse_args(argv)
    if args.render:
        write_report(Report.from_dict(json.loads(args.render.read_text())), args)
        return 0
    settings = Settings.from_args(args)
    settings.env = dict(item.split("=", 1) for item in args.env)

    def say(line: str) -> None:
        print(line, flush=True)

    go_binary = go_kes(not args.no_go, say)
    bombardier_path = find_bombardier(peers.go_binary())
    if bombardier_path is None:
        say(
            "bombardier not found: install it with `GOBIN=~/.cache/kes-flask/bin go install "
            f"github.com/codesenberg/bombardier@{BOMBARDIER_VERSION}` or put it on PATH"
        )
        return 2
    os.sched_setaffinity(0, {int(c) for c in cpu_plan(1)[1].split(",")})  # the probe's CPU
    load_before = procs.load_average()
    machine = procs.machine_facts(ROOT, bombardier_path, peers.go_binary())
    machine["bombardier"] = f"{BOMBARDIER_VERSION} ({bombardier_path})"
    if go_binary:
        machine["Go KES"] = f"{peers.KES_VERSION} ({go_binary})"
    scenarios = []
    with tempfile.TemporaryDirectory(prefix="kes-bench-") as name:
        tmp = Path(name)
        pki = PKI.create(tmp)
        config = config_yaml(pki, str(tmp / "keys"))
        if args.cold_only:
            for cores in (int(c) for c in args.cores.split(",") if c.strip()):
                scenario = cold_starts(cores, tmp, pki, config, go_binary, settings)
                scenarios.append(scenario)
            print(cold_start_table(scenarios))
            return 0
        for cores in (int(c) for c in args.cores.split(",") if c.strip()):
            say(f"{cores} core(s): " + ("kes-flask and Go KES" if go_binary else "kes-flask"))
            scenarios.append(
                run_scenario(cores, tmp, pki, config, go_binary, bombardier_path, settings, say)
            )
        study = None
        if not args.no_memory:
            say("memory study: one worker")
            study = memory_study(tmp, pki, config, bombardier_path, settings, say)
    extras = {"Cost of recording a request's metrics": metrics_cost.paragraph(scenarios)}
    report = Report(
        scenarios=scenarios,
        machine=machine,
        logical_cpus=os.cpu_count() or 0,
        load_before=load_before,
        load_after=procs.load_average(),
        settings={
            "seconds per run": f"{settings.seconds:g}",
            "rounds": str(settings.rounds),
            "connections": str(settings.connections),
            "mode": "quick" if args.quick else "full",
        },
        memory=study,
        extras=extras,
    )
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))
    write_report(report, args)
    return 0


def write_report(report: Report, args: argparse.Namespace) -> None:
    """Print the tables; unless --no-write, write docs/benchmarks.md and its chart."""
    chart_path = args.doc.with_suffix(".png")
    text = render(report, chart_path.name)
    print()
    print(text)
    if args.no_write:
        return
    drawn = chart(report, chart_path)
    if not drawn:
        text = render(report, None)
        print("matplotlib not installed (pip install -e '.[bench]'): no chart")
    existing = args.doc.read_text() if args.doc.exists() else None
    args.doc.write_text(merge_document(existing, text, TITLE, INTRO))
    print(f"wrote {args.doc}" + (f" and {chart_path}" if drawn else ""))


if __name__ == "__main__":
    sys.exit(main())
