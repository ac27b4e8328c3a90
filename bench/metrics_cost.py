"""What recording one request's metrics costs a worker: a micro-benchmark of the two calls the
request pipeline makes (``request_started`` and ``request_finished``), next to two empty calls.

Works with the in-process ``Metrics(started)`` and with the cross-worker version that takes the
shared telemetry memory first (``Metrics(shared, started)``); ``compare.py`` puts the figure next
to the time one status request takes on one worker.

    python bench/metrics_cost.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_metrics():
    """A ``Metrics`` as a worker holds it, whichever constructor this tree has."""
    from kes_flask.telemetry import metrics

    parameters = list(inspect.signature(metrics.Metrics).parameters)
    if parameters and parameters[0] == "shared":
        from kes_flask.telemetry.shared import SharedTelemetry

        shared = SharedTelemetry(1)
        shared.bind_alone()
        return metrics.Metrics(shared, time.monotonic()), "shared memory (cross-worker)"
    return metrics.Metrics(time.monotonic()), "in-process"


def _empty(*_args) -> None:
    return None


def per_request_ns(calls: int = 200_000, repeats: int = 5) -> tuple[float, float, str]:
    """(ns per recorded request, ns of two empty calls, which implementation); best of
    ``repeats`` so that other processes on the machine inflate the figure as little as possible."""
    recorder, kind = make_metrics()
    started, finished = recorder.request_started, recorder.request_finished

    def timed(first, second) -> float:
        best = float("inf")
        for _ in range(repeats):
            begin = time.perf_counter_ns()
            for _ in range(calls):
                first()
                second(200, 0.0012)
            best = min(best, (time.perf_counter_ns() - begin) / calls)
        return best

    return timed(started, finished), timed(_empty, _empty), kind


def paragraph(scenarios) -> str:
    """One Markdown paragraph: the cost and its share of a one-worker status request."""
    recorded, empty, kind = per_request_ns()
    text = (
        f"Recording one request ({kind} metrics: `request_started` + `request_finished`) costs "
        f"{recorded / 1000:.2f} µs, {recorded / empty:.1f} x two empty calls "
        f"({empty / 1000:.2f} µs; the multiple is what to compare between runs on a busy "
        "machine), best of 5 x 200 000 calls in one process (`python bench/metrics_cost.py`)."
    )
    one = scenarios[0].cell("status", "kes-flask") if scenarios else None
    if one and one.rps:
        per_request = 1e9 / one.rps
        text += (
            f" A status request on one worker takes {per_request / 1000:.0f} µs "
            f"({one.rps:.0f} req/s), so metrics are {100 * recorded / per_request:.1f} % of it."
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    recorded, empty, kind = per_request_ns(args.calls)
    print(
        f"{kind} metrics: {recorded:.0f} ns per request recorded, {recorded / empty:.1f} x "
        f"two empty calls ({empty:.0f} ns)"
    )


if __name__ == "__main__":
    main()
