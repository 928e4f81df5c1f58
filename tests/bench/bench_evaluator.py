"""The reference evaluator on one core: evaluations per second.

Run: `make bench` (or `uv run python -m tests.bench.bench_evaluator [--flags N]
[--runs N] [--profile]`). Baselines: the seed's target (1,000 evaluations/s), plus,
measured in the same run, the same loop without metrics and the bare `evaluate`
function, so the cost of each layer shows. Config reload time is in `bench_config`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from app.flags.evaluator import EvaluationContext, EvaluationMetrics, FlagEvaluator, evaluate
from tests.bench.workloads import write_config

SEED_EVALUATIONS_PER_SECOND = 1_000
ENVIRONMENT = "production"


def contexts(count: int, seed: int = 7) -> list[EvaluationContext]:
    """Random users, one in ten with the `staff` type that a targeting rule matches."""
    rng = random.Random(seed)
    return [
        EvaluationContext(
            user_id=f"user-{rng.getrandbits(48):012x}",
            user_type="staff" if rng.random() < 0.1 else "customer",
            custom_attributes={"country": rng.choice(["de", "fr", "us"])},
        )
        for _ in range(count)
    ]


def rate(runs: int, seconds: float, step: Callable[[], int]) -> list[float]:
    """Evaluations per second of `step` (which returns how many it did), per run."""
    step()
    samples = []
    for _ in range(runs):
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            done += step()
        samples.append(done / (time.perf_counter() - started))
    return samples


def spread(samples: list[float], digits: int = 0) -> str:
    return (
        f"median {statistics.median(samples):>10,.{digits}f}  min {min(samples):,.{digits}f}"
        f"  max {max(samples):,.{digits}f}  (n={len(samples)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    users = contexts(200)
    with tempfile.TemporaryDirectory() as tmp:
        base = write_config(Path(tmp), args.flags)
        metrics = EvaluationMetrics(CollectorRegistry())
        evaluator = FlagEvaluator(base, ENVIRONMENT, metrics)
        bare_evaluator = FlagEvaluator(base, ENVIRONMENT)
        keys = list(evaluator.config.flags)
        pairs = [(key, users[i % len(users)]) for i, key in enumerate(keys * 2)]
        flags = [evaluator.config.flags[key] for key, _ in pairs]
        now = datetime.now(UTC)

        def with_metrics() -> int:
            for key, context in pairs:
                evaluator.evaluate(key, context)
            return len(pairs)

        def without_metrics() -> int:
            for key, context in pairs:
                bare_evaluator.evaluate(key, context)
            return len(pairs)

        def bare() -> int:
            for flag, (_, context) in zip(flags, pairs, strict=True):
                evaluate(flag, context, now)
            return len(pairs)

        measured = rate(args.runs, args.seconds, with_metrics)
        no_metrics = rate(args.runs, args.seconds, without_metrics)
        pure = rate(args.runs, args.seconds, bare)

        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(with_metrics)
            pstats.Stats(profile).sort_stats("tottime").print_stats(12)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (pinned to one), "
        f"Python {platform.python_version()}"
    )
    print(f"{args.flags} flags, 200 random users, {args.runs} runs of {args.seconds:g} s")
    print("evaluations per second")
    print(f"  FlagEvaluator, metrics on   {spread(measured)}")
    print(f"  FlagEvaluator, metrics off  {spread(no_metrics)}")
    print(f"  bare evaluate()             {spread(pure)}")
    print(
        f"  seed target {SEED_EVALUATIONS_PER_SECOND:,}/s: "
        f"{statistics.median(measured) / SEED_EVALUATIONS_PER_SECOND:,.0f}x; "
        f"target 200,000/s: {statistics.median(measured) / 200_000:.2f}x"
    )


if __name__ == "__main__":
    main()
