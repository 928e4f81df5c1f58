"""Config loading: hot reload time of a 1,000-flag config.

Run: `make bench` (or `uv run python -m tests.bench.bench_config [--flags N] [--runs N]
[--profile]`). Baseline: the seed's target (a 100 ms reload); target 20 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from app.flags.evaluator import EvaluationMetrics, FlagEvaluator
from tests.bench.workloads import write_config

SEED_RELOAD_MS = 100.0
TARGET_RELOAD_MS = 20.0
ENVIRONMENT = "production"


def spread(samples: list[float], digits: int = 1) -> str:
    return (
        f"median {statistics.median(samples):>8,.{digits}f}  min {min(samples):,.{digits}f}"
        f"  max {max(samples):,.{digits}f}  (n={len(samples)})"
    )


def reload_times(base: Path, runs: int, profile: bool) -> list[float]:
    """Milliseconds of each `maybe_reload` after a one-line change of the override file."""
    evaluator = FlagEvaluator(base, ENVIRONMENT, EvaluationMetrics(CollectorRegistry()))
    override = base.with_name(f"{base.stem}_{ENVIRONMENT}{base.suffix}")
    samples = []
    for i in range(runs):
        override.write_text(f"flags: {{bench_flag_00000: {{rollout: {{percentage: {i}}}}}}}\n")
        started = time.perf_counter()
        assert evaluator.maybe_reload(), evaluator.last_error
        samples.append((time.perf_counter() - started) * 1000)
    if profile:
        profiler = cProfile.Profile()
        override.write_text("flags: {}\n")
        profiler.runcall(evaluator.maybe_reload)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    with tempfile.TemporaryDirectory() as tmp:
        base = write_config(Path(tmp), args.flags)
        reloads = reload_times(base, args.runs, args.profile)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (pinned to one), "
        f"Python {platform.python_version()}"
    )
    print(f"reload of {args.flags} flags, ms")
    print(f"  maybe_reload                {spread(reloads)}")
    median = statistics.median(reloads)
    print(
        f"  seed target {SEED_RELOAD_MS:g} ms: {median / SEED_RELOAD_MS:.2f}x; "
        f"target {TARGET_RELOAD_MS:g} ms: {median / TARGET_RELOAD_MS:.2f}x "
        f"({'met' if median <= TARGET_RELOAD_MS else 'not met'})"
    )


if __name__ == "__main__":
    main()
