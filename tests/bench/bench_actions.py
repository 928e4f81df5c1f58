"""Commit latency of advance and rollback on a 1,000-flag YAML config, audit included.

Run: `make bench` (or `uv run python -m tests.bench.bench_actions [--flags N] [--runs N]`).
Baseline, in the same run: the bare YAML round trip the backend cannot avoid (ruamel
load, one edit, dump, rename), without lock, validation, fsync, history or audit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.actions import Action, ActionRequest, execute_action
from app.rollout.audit import AuditLog
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role

OPERATOR = Identity("bench", Role.OPERATOR, "bench")


def write_config(directory: Path, flags: int) -> Path:
    """A base file with `flags` rollout flags and an empty production override."""
    lines = ['version: "1.0.0"', "flags:"]
    for i in range(flags):
        lines += [
            f"  flag_{i:05d}:",
            "    state: rollout",
            "    rollout: {strategy: percentage, percentage: 25}",
            f"    metadata: {{phase: {i % 6 + 1}, description: 'benchmark flag {i}'}}",
        ]
    base = directory / "feature_flags.yaml"
    base.write_text("\n".join(lines) + "\n")
    (directory / "feature_flags_production.yaml").write_text("flags: {}\n")
    return base


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed(runs: int, step: Callable[[int], None]) -> list[float]:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        step(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        base = write_config(directory, args.flags)
        backend = YamlFlagBackend(base)
        audit = AuditLog(open_database(f"sqlite:///{directory / 'metrics.db'}"), directory / "j")

        def act(action: Action) -> Callable[[int], None]:
            def step(i: int) -> None:
                request = ActionRequest(
                    action, "production", "benchmark", OPERATOR, flag=f"flag_{i % args.flags:05d}"
                )
                result = execute_action(request, backend, audit, lambda _s, _f: passing)
                assert result.applied, result.error

            return step

        passing = [GuardResult("data_fresh", True, 1.0, 120, "benchmark")]
        advance = timed(args.runs, act(Action.ADVANCE))
        rollback = timed(args.runs, act(Action.ROLLBACK))

        yaml = YAML()
        override = directory / "feature_flags_production.yaml"

        def bare(i: int) -> None:
            document = yaml.load(override.read_text())
            document["flags"][f"flag_{i % args.flags:05d}"]["rollout"]["percentage"] = 10 + i % 2
            scratch = override.with_suffix(".bare")
            with scratch.open("w") as handle:
                yaml.dump(document, handle)
            os.replace(scratch, override.with_suffix(".bare-done"))

        baseline = timed(args.runs, bare)

        # Emergency rollback: every other flag in rollout (500 of 1,000), killed at once;
        # the override is reset between runs, outside the timing.
        emergency_runs = max(5, args.runs // 10)
        emergency: list[float] = []
        for run in range(emergency_runs):
            override.write_text(
                "flags:\n"
                + "".join(f"  flag_{i:05d}: {{state: disabled}}\n" for i in range(0, args.flags, 2))
            )
            request = ActionRequest(
                Action.EMERGENCY, "production", "benchmark", OPERATOR, idempotency_key=f"e{run}"
            )
            started = time.perf_counter()
            result = execute_action(request, backend, audit, lambda _s, _f: passing)
            emergency.append((time.perf_counter() - started) * 1000)
            assert result.applied and len(result.plan.transitions) == args.flags // 2, result.error

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{args.flags} flags, {args.runs} runs each; milliseconds")
    for name, samples in (("advance", advance), ("rollback", rollback), ("baseline", baseline)):
        median, p99 = percentiles(samples)
        print(f"  {name:<9} median {median:7.2f}  p99 {p99:7.2f}")
    median, _ = percentiles(emergency)
    print(
        f"  emergency rollback of {args.flags // 2} flags: median {median:.1f} ms, "
        f"min {min(emergency):.1f}, max {max(emergency):.1f} (n={len(emergency)})"
    )


if __name__ == "__main__":
    main()
