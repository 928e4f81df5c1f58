"""Overview load against a real, backfilled Prometheus at 22, 1,000 and 5,000 flags.

Run: `make bench` (or `uv run python -m tests.bench.bench_overview [--runs N]`).
Every figure is printed beside its baseline, measured in the same run:
(a) PromQL queries per overview load vs one query per flag and panel;
(b) overview build time at 1,000 flags vs raw `requests` calls of the same PromQL;
(c) the same at 5,000 flags, warm, and this process's resident memory;
(d) range result -> DataFrame: moved to tests/bench/bench_frames.py;
(e) Prometheus requests of 50 concurrent viewers sharing one refresh interval vs one;
(f) overview build at 5,000 flags, warm, with the recording rules on
    (ROLLOUT_USE_RECORDING_RULES), vs raw `requests` of the raw expressions; the recorded
    series are written by `promtool tsdb create-blocks-from rules` from the backfilled
    data, as a running Prometheus would have recorded them.
The data is scaled down to keep the run short: see tests/bench/workloads.py.
`--only-recorded` runs (f) alone.
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
from queries.prometheus import (
    RECORDED_BUCKETS,
    RECORDED_ERRORS,
    RECORDED_EVALUATIONS,
    RECORDED_QUANTILES,
    RECORDED_REASONS,
    RECORDED_SPARKLINE,
    RECORDED_WINDOW,
    PrometheusMetrics,
)
from tests.bench.workloads import END, Workload, write_config
from tests.support.prometheus import PrometheusProcess, start_prometheus, with_recorded_series

ENVIRONMENT = "production"
WINDOW = timedelta(minutes=1)
PANELS = 6  # rates, errors, latency quantiles, sparkline, variant counts, newest sample
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rollout.rules.yml"
RECORDED = (
    RECORDED_EVALUATIONS,
    RECORDED_ERRORS,
    RECORDED_BUCKETS,
    RECORDED_QUANTILES,
    RECORDED_REASONS,
    RECORDED_SPARKLINE,
)
VIEWERS = 50
TIERS = (Workload(22), Workload(1000), Workload(5000, instances=4))
#: (f): history enough for the rules' 5-minute window and 5-minute sparklines to be
#: whole at every point asked (a rate over a window reaching before the first sample is
#: extrapolated, differently at a rule's evaluation time and at the query's)
RECORDED_TIER = Workload(5000, instances=4, minutes=8)
SPARKLINE = timedelta(minutes=5)


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


class Metrics(PrometheusMetrics):
    """The dashboard's client, also noting which queries it sent as range queries (the
    overview asks its questions at once, so their order in `issued` varies)."""

    def __init__(self, url: str, recorded: bool = False) -> None:
        super().__init__(url, timeout_seconds=60, recorded=recorded)
        self.ranged: set[str] = set()

    def range(self, query: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.ranged.add(query)
        return super().range(query, *args, **kwargs)


def panel_name(query: str, ranged: set[str]) -> str:
    if query in ranged:
        return "sparkline (range)"
    for needle, name in (
        ("timestamp(", "newest sample"),
        ("quantile", "latency"),
        ("error", "errors"),
        ("reason", "variant counts"),
    ):
        if needle in query:
            return name
    return "rates"


class Tier:
    """One Prometheus serving `workload`, and the config of its flags."""

    def __init__(self, workload: Workload, workdir: Path) -> None:
        self.workload = workload
        self.workdir = workdir / "prometheus"
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
        self.server: PrometheusProcess = start_prometheus(text, self.workdir)
        del text
        gc.collect()
        self.setup_seconds = time.perf_counter() - started
        self.size_mb = size
        self.config: FlagConfig = load_config(write_config(workdir, workload.flags), ENVIRONMENT)
        self.span = END - workload.start

    def metrics(self, recorded: bool = False) -> Metrics:
        return Metrics(self.server.url, recorded=recorded)

    def record_rules(self) -> float:
        """The shipped recording rules' series over the whole history; seconds taken."""
        started = time.perf_counter()
        self.server = with_recorded_series(
            self.server, self.workdir, RULES, self.workload.start, END
        )
        return time.perf_counter() - started

    def load(self, metrics: PrometheusMetrics, window: timedelta = WINDOW) -> Overview:
        return load_overview(
            config=self.config,
            environment=ENVIRONMENT,
            sources=[metrics],
            changes=empty_frame(LAST_CHANGE_COLUMNS),
            thresholds=HealthThresholds(),
            window=window,
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


def raw_calls(
    tier: Tier, issued: list[str], ranged: set[str], per_panel: dict[str, list[float]]
) -> Callable[[], None]:
    """The overview's own PromQL sent one after the other with plain `requests` (JSON
    decoded, nothing more); each query's milliseconds go to `per_panel[its name]`."""
    session = requests.Session()
    url = tier.server.url
    step = f"{int(max(timedelta(seconds=60), tier.span / 30).total_seconds())}s"
    at = END.timestamp()
    start = (END - tier.span).timestamp()

    def send() -> None:
        for query in issued:
            started = time.perf_counter()
            if query in ranged:
                params: dict[str, Any] = {"query": query, "start": start, "end": at, "step": step}
                reply = session.get(f"{url}/api/v1/query_range", params=params, timeout=60)
            else:
                reply = session.get(f"{url}/api/v1/query", params={"query": query, "time": at})
            reply.raise_for_status()
            reply.json()
            name = panel_name(query, ranged)
            per_panel.setdefault(name, []).append((time.perf_counter() - started) * 1000)

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
    per_panel: dict[str, list[float]] = {}
    last_load = list(metrics.issued[-int(counts[-1]) :])
    raw = timed_ms(runs, raw_calls(tier, last_load, metrics.ranged, per_panel))
    ratio = statistics.median(ours) / statistics.median(raw)
    print(
        f"  (a) {tier.workload.flags:>5} flags: {spread(counts, digits=0)} queries per load;"
        f" naive one-per-flag-and-panel loop: {tier.workload.flags * PANELS:,}"
    )
    print(f"  {label} load_overview     {spread(ours, ' ms')}")
    print(f"  {label} raw requests      {spread(raw, ' ms')}")
    print(f"  {label} ratio (median)    {ratio:.2f}x")
    for name, samples in per_panel.items():
        print(f"      raw {name:<18} median {statistics.median(samples):7.1f} ms")
    return statistics.median(ours)


def shown(overview: Overview) -> list[tuple[object, ...]]:
    """What the grid shows of each row, numbers rounded to 9 significant digits."""

    def r(value: float | None) -> float | None:
        return None if value is None else float(f"{value:.9g}")

    return [
        (
            row.flag,
            row.health,
            row.why,
            r(row.evaluations_per_second),
            r(row.error_rate),
            r(row.p50_seconds),
            r(row.p99_seconds),
            tuple((v, r(s)) for v, s in row.variants.items()),
            tuple(r(v) for v in row.sparkline),
        )
        for row in overview.rows
    ]


def recorded_build_time(tier: Tier, runs: int) -> None:
    """(f): the overview with the recording rules on vs the raw expressions, same data,
    same window (the rules' 5 minutes), each against raw HTTP of its own queries."""
    figures: dict[str, list[float]] = {}
    loads: dict[bool, tuple[Metrics, Overview, list[str]]] = {}
    for recorded in (False, True):
        metrics = tier.metrics(recorded)
        overviews: list[Overview] = []
        ours = timed_ms(
            runs, lambda m=metrics, o=overviews: o.append(tier.load(m, RECORDED_WINDOW))
        )
        overview = overviews[-1]
        assert overview.source == "prometheus", overview.notices
        assert len(overview.rows) == tier.workload.flags
        sent = list(metrics.issued[-overview.queries :])
        loads[recorded] = metrics, overview, sent
        figures[
            "recording rules on: load_overview" if recorded else "raw expressions: load_overview"
        ] = ours
    (raw_metrics, raw_overview, raw_sent), (metrics, overview, sent) = loads[False], loads[True]
    # The recorded series answered every question but the newest sample's time (a missing
    # one would have added its raw query), and the grid shows the same numbers.
    assert overview.queries == raw_overview.queries == PANELS, (overview.queries, sent)
    assert sum(any(name in query for name in RECORDED) for query in sent) == PANELS - 1, sent
    assert shown(overview) == shown(raw_overview), "recorded and raw overviews differ"
    per_panel: dict[str, dict[str, list[float]]] = {"raw": {}, "recorded": {}}
    figures["baseline: raw HTTP of the raw expressions"] = timed_ms(
        runs, raw_calls(tier, raw_sent, raw_metrics.ranged, per_panel["raw"])
    )
    figures["raw HTTP of the recorded-series queries"] = timed_ms(
        runs, raw_calls(tier, sent, metrics.ranged, per_panel["recorded"])
    )
    baseline = statistics.median(figures["baseline: raw HTTP of the raw expressions"])
    print(
        f"  {overview.queries} PromQL queries per load ({overview.queries - 1} on recorded "
        f"series); the recorded and raw overviews show the same {len(overview.rows):,} rows"
    )
    for label, samples in figures.items():
        ratio = statistics.median(samples) / baseline
        print(f"  {label:<44} {spread(samples, ' ms')}  = {ratio:.2f}x baseline")
    for kind, panels in per_panel.items():
        print(
            f"    per query ({kind}): "
            + ", ".join(
                f"{name} {statistics.median(samples):.0f} ms" for name, samples in panels.items()
            )
        )
    median = statistics.median(figures["recording rules on: load_overview"])
    print(f"  5,000 flags, recording rules on: {median / 1000:.2f} s median (target < 2 s)")


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
    parser.add_argument("--only-recorded", action="store_true", help="run (f) alone")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"rate window {WINDOW}, queries pinned to {END.isoformat()}, {args.runs} runs each")
    if args.only_recorded:
        with tempfile.TemporaryDirectory() as tmp:
            recorded_tier(Path(tmp), args.runs)
        return
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
        recorded_tier(Path(tmp), args.runs)


def recorded_tier(tmp: Path, runs: int) -> None:
    tier = Tier(RECORDED_TIER, tmp / "5000-recorded")
    tier.span = SPARKLINE
    print(f"\n(f) overview build, 5,000 flags, warm, recording rules on\n  [{tier.describe()}]")
    seconds = tier.record_rules()
    print(
        f"  [recorded series written by promtool from the data in {seconds:.1f} s; "
        "rate window 5 min, sparkline 5 min]"
    )
    try:
        recorded_build_time(tier, runs)
    finally:
        tier.server.stop()


if __name__ == "__main__":
    main()
