"""Range result -> DataFrame: ours against prometheus_api_client's MetricRangeDataFrame.

Run: `make bench` (or `uv run python -m tests.bench.bench_frames [--runs N]`).
The reply is the one a sparkline asks for: `sum by (flag) (rate(...))` over 30 min at a
1 min step, i.e. 31 points per series, for 1,000 and 5,000 flags. It is generated in
memory as the JSON text Prometheus writes (values as strings, timestamps as float
seconds, one label set per series, some series starting late) and parsed with `json`,
as the client does, so both sides convert exactly what a real server would send.
Both sides are timed in turns within every run; the ratio is reported per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_api_client import MetricRangeDataFrame

from queries.prometheus import PrometheusMetrics
from tests.bench.workloads import END

ENVIRONMENT = "production"
SPAN = timedelta(minutes=30)
STEP = timedelta(minutes=1)
SERIES = (1000, 5000)
#: a sparkline query is sent at an arbitrary instant: its timestamps are not whole seconds
OFFSET_SECONDS = 0.317


def sparkline_reply_text(series: int, seed: int = 11) -> str:
    """The JSON body of Prometheus's answer to the sparkline range query."""
    rng = random.Random(seed)
    start = END.timestamp() - SPAN.total_seconds() + OFFSET_SECONDS
    steps = int(SPAN / STEP) + 1
    result = []
    for n in range(series):
        rate = rng.uniform(0.05, 40.0)
        first = rng.randrange(1, steps) if rng.random() < 0.05 else 0  # a flag new in the span
        values = [
            [start + k * STEP.total_seconds(), repr(rate * rng.uniform(0.8, 1.2))]
            for k in range(first, steps)
        ]
        result.append({"metric": {"flag": f"bench_flag_{n:05d}"}, "values": values})
    reply = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return json.dumps(reply, separators=(",", ":"))


class _Replay:
    """A stand-in client answering the range query with one parsed reply."""

    def __init__(self, result: list[dict[str, Any]]) -> None:
        self.result = result
        self.url = ""

    def custom_query_range(self, *_args: object, **_kwargs: object) -> list[dict[str, Any]]:
        return self.result


def timed_turns(runs: int, steps: list[Callable[[], object]]) -> list[list[float]]:
    """Milliseconds of each step per run; the steps take turns within every run."""
    for step in steps:
        step()  # warm
    samples: list[list[float]] = [[] for _ in steps]
    for _ in range(runs):
        for step, measured in zip(steps, samples, strict=True):
            started = time.perf_counter()
            step()
            measured.append((time.perf_counter() - started) * 1000)
    return samples


def spread(samples: list[float], unit: str = "", digits: int = 1) -> str:
    return (
        f"median {statistics.median(samples):.{digits}f}{unit}  "
        f"min {min(samples):.{digits}f}  max {max(samples):.{digits}f}  (n={len(samples)})"
    )


def range_to_frame(series: int, runs: int) -> None:
    raw = json.loads(sparkline_reply_text(series))["data"]["result"]
    points = sum(len(s["values"]) for s in raw)
    metrics = PrometheusMetrics("http://127.0.0.1:1")
    metrics._client = _Replay(raw)  # type: ignore[assignment]  # time the conversion only
    start, end = END - SPAN, END

    def ours() -> object:
        frame = metrics.evaluation_sparklines(ENVIRONMENT, start, end, STEP)
        assert len(frame) == points
        return frame

    ours_ms, theirs_ms = timed_turns(runs, [ours, lambda: MetricRangeDataFrame(raw)])
    ratios = [t / o for o, t in zip(ours_ms, theirs_ms, strict=True)]
    print(f"  {series:,} series, {points:,} points")
    print(f"    evaluation_sparklines  {spread(ours_ms, ' ms', 2)}")
    print(f"    MetricRangeDataFrame   {spread(theirs_ms, ' ms', 2)}")
    print(f"    ours faster by         {spread(ratios, 'x', 1)}  (target >= 10x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"(d) range result -> DataFrame: {SPAN} at {STEP} step "
        f"({int(SPAN / STEP) + 1} points per series), {args.runs} runs in turns"
    )
    for series in SERIES:
        range_to_frame(series, args.runs)


if __name__ == "__main__":
    main()
