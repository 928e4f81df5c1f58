"""Overview load against a real, backfilled Prometheus at 22, 1,000 and 5,000 flags.

Run: `make bench` (or `uv run python -m tests.bench.bench_overview [--runs N]`).
Every figure is printed beside its baseline, measured in the same run:
(a) PromQL queries per overview load vs one query per flag and panel;
(b) overview build time at 1,000 flags vs raw `requests` calls of the same PromQL;
(c) the same at 5,000 flags, warm, and this process's resident memory;
(d) range result -> DataFrame: moved to tests/bench/bench_frames.py;
(e) Prometheus requests of 50 concurrent viewers sharing one refresh interval vs one.
The data is scaled down to keep the run short: see tests/bench/workloads.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from app.analysis.health import HealthThresholds
from app.flags.loader import load_config
from app.flags.model import FlagConfig
from app.services.overview import Overview, load_overview
from app.services.overview_cache import SharedOverviewCache
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import empty_frame
from queries.prometheus import PrometheusMetrics
from tests.bench.workloads import END, Workload, write_config
from tests.support.prometheus import PrometheusProcess, start_prometheus

ENVIRONMENT = "production"
WINDOW = timedelta(minutes=1)
PANELS = 5  # rates, errors, latency quantiles, sparkline, newest sample
VIEWERS = 50
TIERS = (Workload(22), Workload(1000), Workload(5000, instances=4))


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MB; psutil is not a dependency here."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spread(samples: list[float], unit: str = "", digits: int = 1) -> str:
    return (
        f"median {statistics.median(samples):.{digits}f}{unit}  "
        f"min {min(samples):.{digits}f}  max {max(samples):.{digits}f}  (n={len(samples)})"
    )


def timed_ms(runs: int, step: Callable[[], object]) -> list[float]:
    step()  # warm: connections open, caches filled
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class Tier:
    """One Prometheus serving `workload`, and the config of its flags."""

    def __init__(self, workload: Workload, workdir: Path) -> None:
        self.workload = workload
        started = time.perf_counter()
        workdir.mkdir(parents=True, exist_ok=True)
        generated = workdir / "generated.om.txt"
        w = workload
        subprocess.run(
            [sys.executable, "-m", "tests.bench.workloads"]
            + [str(n) for n in (w.flags, w.instances, w.minutes)]
            + [str(generated)],
            check=True,
        )
        text = generated.read_text()
        generated.unlink()
        size = len(text) / 1e6
        self.server: PrometheusProcess = start_prometheus(text, workdir / "prometheus")
        del text
        gc.collect()
        self.setup_seconds = time.perf_counter() - started
        self.size_mb = size
        self.config: FlagConfig = load_config(write_config(workdir, workload.flags), ENVIRONMENT)
        self.span = END - workload.start

    def metrics(self) -> PrometheusMetrics:
        return PrometheusMetrics(self.server.url, timeout_seconds=60)

    def load(self, metrics: PrometheusMetrics) -> Overview:
        return load_overview(
            config=self.config,
            environment=ENVIRONMENT,
            sources=[metrics],
            changes=empty_frame(LAST_CHANGE_COLUMNS),
            thresholds=HealthThresholds(),
            window=WINDOW,
            sparkline_span=self.span,
            at=END,
            recent=timedelta(hours=24),
        )

    def describe(self) -> str:
        w = self.workload
        return (
            f"{w.flags} flags x 3 variants x 2 environments, {w.instances} instances, "
            f"{w.minutes} min at 15 s: {w.series:,} series, {self.size_mb:.0f} MB OpenMetrics, "
            f"backfill + start {self.setup_seconds:.1f} s"
        )


PANEL_NAMES = ("rates", "errors", "latency", "sparkline (range)", "newest sample")


def raw_calls(tier: Tier, issued: list[str], per_panel: list[list[float]]) -> Callable[[], None]:
    """The overview's own PromQL sent with plain `requests` (JSON decoded, nothing more);
    each query's milliseconds go to `per_panel`."""
    session = requests.Session()
    url = tier.server.url
    step = f"{int(max(timedelta(seconds=60), tier.span / 30).total_seconds())}s"
    at = END.timestamp()
    start = tier.workload.start.timestamp()

    def send() -> None:
        for index, query in enumerate(issued):
            started = time.perf_counter()
            if index == 3:  # load_overview's order: the sparkline is the range query
                params: dict[str, Any] = {"query": query, "start": start, "end": at, "step": step}
                reply = session.get(f"{url}/api/v1/query_range", params=params, timeout=60)
            else:
                reply = session.get(f"{url}/api/v1/query", params={"query": query, "time": at})
            reply.raise_for_status()
            reply.json()
            per_panel[index].append((time.perf_counter() - started) * 1000)

    return send


def queries_per_load(tier: Tier, runs: int) -> None:
    metrics = tier.metrics()
    counts = []
    for _ in range(runs):
        before = len(metrics.issued)
        overview = tier.load(metrics)
        counts.append(float(len(metrics.issued) - before))
        assert overview.source == "prometheus", overview.notices
        assert len(overview.rows) == tier.workload.flags
    naive = tier.workload.flags * PANELS
    print(
        f"  {tier.workload.flags:>5} flags: {spread(counts, digits=0)} queries per load;"
        f" naive one-per-flag-and-panel loop: {naive:,}"
    )


def naive_loop(tier: Tier) -> tuple[int, float]:
    """One query per flag and panel, really sent (only at the small tier): count, ms."""
    metrics = tier.metrics()
    started = time.perf_counter()
    span_start = END - tier.span
    step = max(timedelta(seconds=60), tier.span / 30)
    for flag in tier.config.flags:
        metrics.evaluation_rates(ENVIRONMENT, WINDOW, END, flag)
        metrics.error_rates(ENVIRONMENT, WINDOW, END, flag)
        metrics.latency_quantiles(ENVIRONMENT, WINDOW, END, flag=flag)
        metrics.evaluation_sparklines(ENVIRONMENT, span_start, END, step)
        metrics.newest_sample_time(ENVIRONMENT, END)
    return len(metrics.issued), (time.perf_counter() - started) * 1000


def build_time(tier: Tier, runs: int, label: str) -> float:
    """Warm overview loads vs the same PromQL over raw HTTP; prints queries per load too."""
    metrics = tier.metrics()
    counts: list[float] = []

    def load() -> None:
        before = len(metrics.issued)
        overview = tier.load(metrics)
        counts.append(float(len(metrics.issued) - before))
        assert overview.source == "prometheus", overview.notices
        assert len(overview.rows) == tier.workload.flags

    ours = timed_ms(runs, load)
    per_panel: list[list[float]] = [[] for _ in range(PANELS)]
    raw = timed_ms(runs, raw_calls(tier, list(metrics.issued[-PANELS:]), per_panel))
    ratio = statistics.median(ours) / statistics.median(raw)
    print(
        f"  (a) {tier.workload.flags:>5} flags: {spread(counts, digits=0)} queries per load;"
        f" naive one-per-flag-and-panel loop: {tier.workload.flags * PANELS:,}"
    )
    print(f"  {label} load_overview     {spread(ours, ' ms')}")
    print(f"  {label} raw requests      {spread(raw, ' ms')}")
    print(f"  {label} ratio (median)    {ratio:.2f}x")
    for name, samples in zip(PANEL_NAMES, per_panel, strict=True):
        print(f"      raw {name:<18} median {statistics.median(samples):7.1f} ms")
    return statistics.median(ours)


def viewers(tier: Tier, runs: int) -> None:
    metrics = tier.metrics()
    one: list[float] = []
    many: list[float] = []
    for run in range(runs):
        before = len(metrics.issued)
        tier.load(metrics)
        one.append(float(len(metrics.issued) - before))

        # One refresh interval: the clock stands still, as within the same 10 s bucket.
        cache = SharedOverviewCache(10, clock=lambda run=run: 1_000_000.0 + 10 * run)
        barrier = threading.Barrier(VIEWERS)
        results: list[Overview] = []

        def viewer(
            cache: SharedOverviewCache = cache,
            barrier: threading.Barrier = barrier,
            results: list[Overview] = results,
        ) -> None:
            barrier.wait()
            results.append(cache.get(ENVIRONMENT, lambda: tier.load(metrics)))

        before = len(metrics.issued)
        threads = [threading.Thread(target=viewer) for _ in range(VIEWERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == VIEWERS and all(r is results[0] for r in results)
        many.append(float(len(metrics.issued) - before))
    ratio = statistics.median(many) / statistics.median(one)
    print(f"  1 viewer:   {spread(one, digits=0)} Prometheus requests per interval")
    print(f"  {VIEWERS} viewers: {spread(many, digits=0)} Prometheus requests per interval")
    print(
        f"  ratio {ratio:.2f}x (without the shared cache: {VIEWERS} x "
        f"{statistics.median(one):.0f} = {VIEWERS * statistics.median(one):.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"rate window {WINDOW}, queries pinned to {END.isoformat()}, {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        small, middle, large = TIERS
        tier = Tier(small, Path(tmp) / str(small.flags))
        print(f"\n(a) PromQL queries per overview load\n  [{tier.describe()}]")
        queries_per_load(tier, args.runs)
        count, ms = naive_loop(tier)
        print(f"     naive loop really sent at {small.flags} flags: {count} queries, {ms:.0f} ms")
        tier.server.stop()

        tier = Tier(middle, Path(tmp) / str(middle.flags))
        print(f"\n(a, b) overview build, 1,000 flags, warm\n  [{tier.describe()}]")
        build_time(tier, args.runs, "1,000")
        print(f"\n(e) {VIEWERS} concurrent viewers, one refresh interval, 1,000 flags")
        viewers(tier, 3)
        tier.server.stop()

        before = rss_mb()
        tier = Tier(large, Path(tmp) / str(large.flags))
        print(f"\n(a, c) overview build, 5,000 flags, warm\n  [{tier.describe()}]")
        median = build_time(tier, args.runs, "5,000")
        print(f"  5,000 flags: {median / 1000:.2f} s median (target < 2 s)")
        print(f"  process RSS {rss_mb():.0f} MB (before this tier {before:.0f} MB; target < 400)")
        tier.server.stop()


if __name__ == "__main__":
    main()
