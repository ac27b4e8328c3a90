"""The benchmark's bookkeeping: parsing bombardier, aggregating rounds, judging the acceptance
lines, rendering docs/benchmarks.md without losing hand-written sections. No load is run."""

from __future__ import annotations

import importlib.util
import json

from bench.load import Bombardier, LoadResult, Request
from bench.render import BEGIN, END, chart, merge_document, render, scenario_table
from bench.report import FLASK, GO, Cell, MemoryRow, MemoryStudy, Report, Scenario, acceptance
from bench.scenarios import cpu_plan, requests_for

BOMBARDIER_JSON = {
    "spec": {"numberOfConnections": 16, "testType": "timed", "testDurationSeconds": 2},
    "result": {
        "bytesRead": 1,
        "bytesWritten": 1,
        "timeTakenSeconds": 2.0,
        "req1xx": 0,
        "req2xx": 8000,
        "req3xx": 0,
        "req4xx": 2,
        "req5xx": 0,
        "others": 1,
        "latency": {
            "mean": 900.0,
            "stddev": 10.0,
            "max": 9000,
            "percentiles": {"50": 850, "75": 1000, "90": 1500, "95": 2000, "99": 4200},
        },
    },
}


def result(rps: float, p99: float = 1.0, cpu: float = 100.0) -> LoadResult:
    return LoadResult(rps, p99 / 2, p99, int(rps), 0, cpu)


def row(worker_rss: float) -> MemoryRow:
    return MemoryRow(worker_rss * 2, worker_rss * 1.5, worker_rss, worker_rss * 0.7, 5)


def scenario(cores: int, flask_rps: float, go_rps: float) -> Scenario:
    s = Scenario(
        f"{cores} core{'s' if cores > 1 else ''}",
        cores,
        {FLASK: f"kes-flask, {cores} worker", GO: f"Go KES, GOMAXPROCS={cores}"},
    )
    for operation in ("generate", "decrypt", "status"):
        for factor in (0.9, 1.0, 1.3):  # three rounds: the median is the middle one
            s.add(operation, FLASK, result(flask_rps * factor))
            s.add(operation, GO, result(go_rps * factor))
    s.rate = int(flask_rps / 2)
    s.latency = {FLASK: result(s.rate, p99=3.0), GO: result(s.rate, p99=0.8)}
    s.memory = {FLASK: {"idle": row(45), "after load": row(52)}, GO: {"idle": row(0)}}
    s.cold_start = {FLASK: [0.45, 0.40, 0.60], GO: [0.08]}
    s.cold_cpu = {FLASK: [0.3, 0.3, 0.31], GO: [0.02]}
    return s


def report(study: MemoryStudy | None = None) -> Report:
    return Report(
        scenarios=[scenario(1, 4100, 24000), scenario(2, 7900, 40000)],
        machine={"CPU": "test CPU, 2 logical CPUs"},
        load_before=(1.5, 1.0, 0.5),
        load_after=(2.0, 1.2, 0.6),
        settings={"seconds per run": "5"},
        memory=study,
    )


def test_bombardier_json_is_read_as_rate_percentiles_and_errors():
    parsed = LoadResult.from_bombardier(json.dumps(BOMBARDIER_JSON))
    assert parsed.rps == 4000
    assert (parsed.p50_ms, parsed.p99_ms) == (0.85, 4.2)
    assert (parsed.requests, parsed.errors) == (8000, 3)


def test_a_cell_is_the_median_over_rounds():
    cell = Cell.of([result(100, 9), result(300, 1), result(200, 5)])
    assert (cell.rps, cell.p99_ms, cell.rounds) == (200, 5, 3)


def test_the_table_has_both_servers_and_their_ratio():
    table = scenario_table(scenario(1, 4100, 24000))
    generate = next(line for line in table.splitlines() if line.startswith("| generate"))
    assert "4 100" in generate and "24 000" in generate and "| 0.17 |" in generate
    assert "describe" not in table  # not measured, no row


def test_kes_flask_alone_renders_without_go_columns():
    alone = Scenario("1 core", 1, {FLASK: "kes-flask, 1 worker"})
    alone.add("generate", FLASK, result(4000))
    table = scenario_table(alone)
    assert "Go KES" not in table and "ratio" not in table
    assert "4 000" in table


def test_core_scaling_is_not_judged_where_the_load_shares_the_servers_cores():
    """On a 2-CPU machine bombardier runs on the two servers' cores: no verdict, a reason."""
    study = MemoryStudy(1, 10_000, 100_000, row(45), row(50), row(56), 3.5, 200)
    data = report(study)
    data.logical_cpus = 2
    (scaling,) = [c for c in acceptance(data) if c.what.startswith("decrypt, 2 workers")]
    assert scaling.met is None
    assert scaling.value.startswith("1.93 x (Go KES ")
    assert "not measurable on 2 CPUs" in scaling.reason
    data.logical_cpus = 4
    (scaling,) = [c for c in acceptance(data) if c.what.startswith("decrypt, 2 workers")]
    assert scaling.met is True and scaling.reason == ""


def test_acceptance_lines_are_judged_on_the_run():
    study = MemoryStudy(1, 10_000, 100_000, row(45), row(50), row(56), 3.5, 200)
    checks = acceptance(report(study))

    def check(start: str):
        (found,) = [c for c in checks if c.what.startswith(start)]
        return found

    one_core = check("generate, 1 worker on 1 core")
    assert (one_core.value, one_core.met) == ("0.171 x", True)  # 4100 / 24000
    by_cpu = check("generate, the same by server CPU")
    assert (by_cpu.value, by_cpu.met) == ("1.000 x", True)  # 100 µs each in this data
    assert check("p99 of generate at half").met is True  # 3 ms
    assert check("decrypt, 2 workers").value.startswith("1.93 x")  # 7900 / 4100
    assert check("decrypt, 2 workers").met is True
    scaling = check("decrypt, 2-core scaling by server CPU")
    assert (scaling.value, scaling.met) == ("2.00 x (Go KES 2.00 x)", True)  # 100 µs everywhere
    assert (check("largest worker RSS").value, check("largest worker RSS").met) == (
        "56.0 MiB",
        True,
    )
    growth = check("worker RSS growth")
    assert (growth.value, growth.met) == ("+12.0 %", False)  # 56 / 50
    cold = check("kes-flask cold start")
    assert (cold.value, cold.met) == ("0.450 s", True)


def test_unmeasured_lines_say_so():
    alone = Report([Scenario("1 core", 1, {FLASK: "kes-flask"})], {}, (0, 0, 0), (0, 0, 0), {})
    assert {check.met for check in acceptance(alone)} == {None}


def test_the_rendered_document_carries_load_machine_and_every_section():
    text = render(report(MemoryStudy(1, 1000, 5000, row(45), row(50), row(50), 3.5, 20)), "c.png")
    for needle in (
        "Load average at the start 1.5 / 1.0 / 0.5",
        "test CPU",
        "### Scaling with cores",
        "### Latency at a fixed rate",
        "### Memory",
        "per idle kept-alive TLS connection (20 open) | 3.5 KiB",
        "### Cold start",
        "### Issue #9 acceptance, this run",
        "![req/s per operation](c.png)",
    ):
        assert needle in text, needle


def test_regenerating_keeps_hand_written_sections():
    first = merge_document(None, "figures 1\n", "# Benchmarks", "intro")
    assert first.startswith("# Benchmarks\n\nintro\n\n" + BEGIN)
    edited = first + "\n## Serving model\n\nchosen by measurement\n"
    second = merge_document(edited, "figures 2\n", "# Benchmarks", "intro")
    assert "figures 2" in second and "figures 1" not in second
    assert second.endswith("## Serving model\n\nchosen by measurement\n")
    assert second.count(BEGIN) == 1 and second.count(END) == 1
    # A file someone else started (no markers yet): the figures go after its title.
    theirs = "# Benchmarks\n\n## Serving model\n\ntext\n"
    merged = merge_document(theirs, "figures\n", "# Benchmarks", "intro")
    assert merged.index(BEGIN) < merged.index("## Serving model")
    assert merged.count("# Benchmarks") == 1


def test_chart_is_a_png_when_matplotlib_is_there(tmp_path):
    path = tmp_path / "chart.png"
    drawn = chart(report(), path)
    if importlib.util.find_spec("matplotlib") is None:
        assert drawn is False and not path.exists()
    else:
        assert drawn is True and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bombardier_command_pins_the_load_and_asks_for_what_it_measures():
    load = Bombardier("/bin/bombardier", "c.crt", "c.key", cpus="1", connections=16)
    handshake = Request("handshake", "GET", "/v1/status", new_connection=True)
    command = load.command("https://127.0.0.1:1", handshake, seconds=0.2, rate=50)
    if command[0] == "taskset":
        assert command[:3] == ["taskset", "-c", "1"]
    assert command[command.index("-d") + 1] == "1s"  # bombardier's minimum duration
    assert "Connection: close" in command and command[command.index("--rate") + 1] == "50"
    assert command[-1] == "https://127.0.0.1:1/v1/status"
    generate = requests_for(b"\x01\x02")["generate"]
    command = load.command("https://h:1", generate, count=500)
    assert command[command.index("-n") + 1] == "500" and "-d" not in command
    assert json.loads(command[command.index("-b") + 1]) == {
        "context": "eyJteS1idWNrZXQiOiJteS1idWNrZXQvcGF0aC90by9vYmplY3QifQ=="
    }


def test_cpu_plan_keeps_load_off_the_server_core_when_it_can(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert cpu_plan(1) == ("0", "1")
    assert cpu_plan(2) == ("0,1", "0,1")  # no third CPU: the load shares
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert cpu_plan(2) == ("0,1", "2,3")


def test_a_saved_run_renders_again_the_same():
    study = MemoryStudy(1, 1000, 5000, row(45), row(50), row(50), 3.5, 20)
    original = report(study)
    original.extras = {"Metrics": "one paragraph"}
    restored = Report.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert render(restored, "c.png") == render(original, "c.png")
