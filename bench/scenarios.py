"""The bench's runs: the two servers side by side on one and two cores, the memory study of one
worker, cold starts. Each function starts what it measures and stops it again.
"""

from __future__ import annotations

import argparse
import json
import os
from base64 import b64encode
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import procs
from bench.load import Bombardier, LoadResult, Request
from bench.report import FLASK, GO, MIB, MemoryRow, MemoryStudy, Scenario
from bench.targets import Target, connection_cost, make_target
from kes_flask.client.errors import ErrKeyExists, KesServerError
from tests.kes_server import PKI

CONTEXT = b'{"my-bucket":"my-bucket/path/to/object"}'

KEY = "bench-key"


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
