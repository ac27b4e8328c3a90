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
from base64 import b64encode
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import metrics_cost, procs  # noqa: E402
from bench.load import (  # noqa: E402
    BOMBARDIER_VERSION,
    Bombardier,
    LoadResult,
    Request,
    find_bombardier,
)
from bench.report import (  # noqa: E402
    FLASK,
    GO,
    MIB,
    MemoryRow,
    MemoryStudy,
    Report,
    Scenario,
    chart,
    cold_start_table,
    merge_document,
    render,
)
from bench.targets import Target, connection_cost, make_target  # noqa: E402
from kes_flask.client.errors import ErrKeyExists, KesServerError  # noqa: E402
from tests.interop import peers  # noqa: E402
from tests.kes_server import PKI, config_yaml  # noqa: E402

CONTEXT = b'{"my-bucket":"my-bucket/path/to/object"}'
KEY = "bench-key"
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


@dataclass
class Settings:
    seconds: float
    warmup: int  # requests per operation and server before measuring
    rounds: int
    connections: int
    cold_starts: int
    memory_requests: int
    warmup_requests: int
    idle_connections: int
    env: dict[str, str] = field(default_factory=dict)  # for kes-flask

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        if args.quick:
            return cls(
                seconds=max(1.0, args.seconds or 1.0),
                warmup=200,
                rounds=args.rounds or 1,
                connections=args.connections,
                cold_starts=1,
                memory_requests=args.memory_requests or 5_000,
                warmup_requests=1_000,
                idle_connections=20,
            )
        return cls(
            seconds=args.seconds or 5.0,
            warmup=2_000,
            rounds=args.rounds or 3,
            connections=args.connections,
            cold_starts=args.cold_starts,
            memory_requests=args.memory_requests or 100_000,
            warmup_requests=10_000,
            idle_connections=200,
        )


def cpu_plan(cores: int) -> tuple[str, str]:
    """(server CPUs, load-generator CPUs): the server on the first ``cores`` CPUs, the load on
    the next ones, or on the server's CPUs too when the machine has no more."""
    count = os.cpu_count() or 1
    server = ",".join(str(c) for c in range(min(cores, count)))
    spare = list(range(cores, count))
    load = ",".join(str(c) for c in spare[: max(1, cores)]) if spare else server
    return server, load


def memory_row(target: Target) -> MemoryRow:
    figures = target.memory()
    workers = figures.workers
    return MemoryRow(
        total_rss=figures.total.rss / MIB,
        total_pss=figures.total.pss / MIB,
        worker_rss=max((w.rss for w in workers), default=0) / MIB,
        worker_pss=max((w.pss for w in workers), default=0) / MIB,
        threads=figures.threads,
    )


def requests_for(ciphertext: bytes) -> dict[str, Request]:
    context = b64encode(CONTEXT).decode()
    decrypt = {"ciphertext": b64encode(ciphertext).decode(), "context": context}
    return {
        "generate": Request(
            "generate", "POST", f"/v1/key/generate/{KEY}", json.dumps({"context": context})
        ),
        "decrypt": Request("decrypt", "POST", f"/v1/key/decrypt/{KEY}", json.dumps(decrypt)),
        "describe": Request("describe", "GET", f"/v1/key/describe/{KEY}"),
        "status": Request("status", "GET", "/v1/status"),
        "handshake": Request("handshake", "GET", "/v1/status", new_connection=True),
    }


def prepare_key(target: Target) -> bytes:
    """Create the benchmark key (through kes-flask) and one ciphertext for decrypt."""
    client = target.server.client("admin")
    try:
        try:
            client.create_key(KEY)
        except KesServerError as err:
            if err != ErrKeyExists:
                raise
        return client.generate_key(KEY, CONTEXT).ciphertext
    finally:
        client.close()


def measured(load: Bombardier, target: Target, request: Request, **kwargs) -> LoadResult:
    """One bombardier run, with the server's CPU time per answered request."""
    pids = target.pids()
    before = procs.cpu_seconds(pids)
    result = load.run(target.url, request, **kwargs)
    used = procs.cpu_seconds(pids) - before
    return replace(result, server_cpu_us=used * 1e6 / max(1, result.requests))


def record_start(scenario: Scenario, kind: str, figures: tuple[float, float]) -> None:
    scenario.cold_start.setdefault(kind, []).append(figures[0])
    scenario.cold_cpu.setdefault(kind, []).append(figures[1])


def run_scenario(
    cores: int,
    tmp: Path,
    pki: PKI,
    config: str,
    go_binary: Path | None,
    bombardier_path: str,
    settings: Settings,
    say,
) -> Scenario:
    server_cpus, load_cpus = cpu_plan(cores)
    kinds = [FLASK] + ([GO] if go_binary else [])
    targets = {
        kind: make_target(
            kind,
            tmp / f"{kind.replace(' ', '-')}-{cores}",
            pki,
            config,
            cores,
            server_cpus,
            go_binary,
            env=settings.env if kind == FLASK else None,
        )
        for kind in kinds
    }
    scenario = Scenario(
        name=f"{cores} core{'s' if cores > 1 else ''}",
        cores=cores,
        labels={kind: target.label for kind, target in targets.items()},
    )
    load = Bombardier(
        bombardier_path,
        pki["admin"].cert_file,
        pki["admin"].key_file,
        cpus=load_cpus,
        connections=settings.connections,
    )
    started: list[Target] = []
    try:
        for kind, target in targets.items():
            record_start(scenario, kind, target.start())
            started.append(target)
        ciphertext = prepare_key(targets[FLASK])
        for kind, target in targets.items():
            scenario.memory.setdefault(kind, {})["idle"] = memory_row(target)
        operations = requests_for(ciphertext)
        for request in operations.values():
            for target in targets.values():
                load.run(target.url, request, count=settings.warmup)
        for round_ in range(settings.rounds):
            order = list(targets.values())
            if round_ % 2:
                order.reverse()
            for name, request in operations.items():
                for target in order:
                    result = measured(load, target, request, seconds=settings.seconds)
                    scenario.add(name, target.kind, result)
                    say(
                        f"  {scenario.name} round {round_ + 1} {name:<9} {target.label:<28} "
                        f"{result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f}  "
                        f"p99 {result.p99_ms:7.2f} ms"
                        + (f"  ({result.errors} errors)" if result.errors else "")
                    )
        peak = scenario.cell("generate", FLASK)
        scenario.rate = max(1, int(peak.rps / 2)) if peak else 1
        for target in targets.values():
            scenario.latency[target.kind] = load.run(
                target.url, operations["generate"], seconds=settings.seconds, rate=scenario.rate
            )
        for kind, target in targets.items():
            scenario.memory[kind]["after load"] = memory_row(target)
    finally:
        for target in started:
            target.stop()
    for _ in range(settings.cold_starts - 1):
        for kind, target in targets.items():
            record_start(scenario, kind, target.start())
            target.stop()
    return scenario


def memory_study(
    tmp: Path, pki: PKI, config: str, bombardier_path: str, settings: Settings, say
) -> MemoryStudy:
    """One kes-flask worker on CPU 0: idle, after a warm-up, after many more requests, and
    the RSS an idle kept-alive TLS connection costs."""
    server_cpus, load_cpus = cpu_plan(1)
    target = make_target(FLASK, tmp / "memory", pki, config, 1, server_cpus, env=settings.env)
    load = Bombardier(
        bombardier_path,
        pki["admin"].cert_file,
        pki["admin"].key_file,
        cpus=load_cpus,
        connections=settings.connections,
    )
    target.start()
    try:
        ciphertext = prepare_key(target)
        generate = requests_for(ciphertext)["generate"]
        idle = memory_row(target)
        load.run(target.url, generate, count=settings.warmup_requests)
        warm = memory_row(target)
        result = load.run(target.url, generate, count=settings.memory_requests)
        after = memory_row(target)
        say(
            f"  memory: worker RSS {idle.worker_rss:.1f} idle, {warm.worker_rss:.1f} warm, "
            f"{after.worker_rss:.1f} MiB after {result.requests} requests"
        )
        per_connection = connection_cost(target, settings.idle_connections)
    finally:
        target.stop()
    return MemoryStudy(
        workers=1,
        warmup_requests=settings.warmup_requests,
        requests=settings.memory_requests,
        idle=idle,
        warm=warm,
        after=after,
        connection_kib=per_connection / 1024,
        connections=settings.idle_connections,
    )


def cold_starts(
    cores: int, tmp: Path, pki: PKI, config: str, go_binary: Path | None, settings: Settings
) -> Scenario:
    """Only start and stop each server, ``settings.cold_starts`` times (``--cold-only``)."""
    server_cpus, _ = cpu_plan(cores)
    kinds = [FLASK] + ([GO] if go_binary else [])
    targets = {
        kind: make_target(
            kind,
            tmp / f"cold-{kind.replace(' ', '-')}-{cores}",
            pki,
            config,
            cores,
            server_cpus,
            go_binary,
            env=settings.env if kind == FLASK else None,
        )
        for kind in kinds
    }
    scenario = Scenario(
        f"{cores} core{'s' if cores > 1 else ''}",
        cores,
        {kind: target.label for kind, target in targets.items()},
    )
    for _ in range(settings.cold_starts):
        for kind, target in targets.items():
            try:
                record_start(scenario, kind, target.start())
            finally:
                target.stop()
    return scenario


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
