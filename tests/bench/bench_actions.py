"""Commit latency of advance and rollback on a 1,000-flag YAML config, audit included,
and of an emergency rollback of 500 flags (yaml and sql backends).

Run: `make bench` (or `uv run python -m tests.bench.bench_actions [--flags N] [--runs N]
[--emergency-runs N] [--dir DIR] [--profile]`). Baseline, in the same run: the bare
YAML round trip the backend used to make on every action (ruamel load, one edit, dump,
rename), without lock, validation, fsync, history or audit. The files live in a fresh
directory under `--dir` (default: the system temp dir, on this machine the real disk);
`--dir /dev/shm` measures the same on tmpfs, where an fsync costs nothing.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from app.audit import AuditLog
from app.flags import yaml_backend
from app.flags.backend import FlagBackend, FlagChange
from app.flags.loader import load_config
from app.flags.sql_backend import SqlFlagBackend
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role

OPERATOR = Identity("bench", Role.OPERATOR, "bench")
PASSING = [GuardResult("data_fresh", True, 1.0, 120, "benchmark")]


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


def figure(samples: list[float]) -> str:
    median, p99 = percentiles(samples)
    return (
        f"median {median:7.2f}  p99 {p99:7.2f}  min {min(samples):7.2f}  "
        f"max {max(samples):8.2f}  (n={len(samples)})"
    )


@dataclass
class Samples:
    """Milliseconds per step: wall time, and CPU time, the share of it that is this
    process's own work (not waiting for a core or the disk)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def timed(runs: range, step: Callable[[int], None], into: Samples) -> None:
    for i in runs:
        started, started_cpu = time.perf_counter(), time.process_time()
        step(i)
        into.wall.append((time.perf_counter() - started) * 1000)
        into.cpu.append((time.process_time() - started_cpu) * 1000)


def act(action: Action, flags: int, backend: FlagBackend, audit: AuditLog) -> Callable[[int], None]:
    """One action per call on flag `i`, through the whole path (plan, audit, apply)."""

    def step(i: int) -> None:
        request = ActionRequest(
            action, "production", "benchmark", OPERATOR, flag=f"flag_{i % flags:05d}"
        )
        result = execute_action(request, backend, audit, lambda _s, _f: PASSING)
        assert result.applied, result.error

    return step


def emergency(backend: FlagBackend, audit: AuditLog, key: str, expected: int) -> float:
    request = ActionRequest(
        Action.EMERGENCY, "production", "benchmark", OPERATOR, idempotency_key=key
    )
    started = time.perf_counter()
    result = execute_action(request, backend, audit, lambda _s, _f: PASSING)
    elapsed = (time.perf_counter() - started) * 1000
    assert result.applied and result.plan is not None, result.error
    assert len(result.plan.transitions) == expected
    return elapsed


def count_round_trips() -> list[int]:
    """Counts the backend's falls back to the ruamel round trip (the bench must not)."""
    calls = [0]
    original = yaml_backend.edit_by_round_trip

    def counted(text: str | None, changes: Sequence[FlagChange], header: str) -> str:
        calls[0] += 1
        return original(text, changes, header)

    yaml_backend.edit_by_round_trip = counted
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--emergency-runs", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch dir")
    parser.add_argument("--profile", action="store_true", help="cProfile the actions after")
    args = parser.parse_args()
    round_trips = count_round_trips()
    half = len(range(0, args.flags, 2))

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        base = write_config(directory, args.flags)
        backend = YamlFlagBackend(base)
        audit = AuditLog(open_database(f"sqlite:///{directory / 'metrics.db'}"), directory / "j")

        # Baseline and actions interleaved in rounds, so that both see the same load.
        advance, rollback, baseline = Samples(), Samples(), Samples()
        yaml = YAML()
        override = directory / "feature_flags_production.yaml"
        rounds = 10
        per_round = max(1, args.runs // rounds)

        def bare(i: int) -> None:
            document = yaml.load(override.read_text())
            document["flags"][f"flag_{i % args.flags:05d}"]["rollout"]["percentage"] = 10 + i % 2
            scratch = override.with_suffix(".bare")
            with scratch.open("w") as handle:
                yaml.dump(document, handle)
            os.replace(scratch, override.with_suffix(".bare-done"))

        advancing = act(Action.ADVANCE, args.flags, backend, audit)
        rolling_back = act(Action.ROLLBACK, args.flags, backend, audit)
        for r in range(rounds):
            flags = range(r * per_round, (r + 1) * per_round)
            timed(flags, advancing, advance)
            timed(flags, rolling_back, rollback)
            timed(flags, bare, baseline)

        # Emergency rollback: every other flag in rollout (half of them), killed at once;
        # the override is reset between runs, outside the timing (its first load, a
        # full validation, is then part of the timing, as for an on-call engineer).
        def reset() -> None:
            override.write_text(
                "flags:\n"
                + "".join(f"  flag_{i:05d}: {{state: disabled}}\n" for i in range(0, args.flags, 2))
            )

        emergency_yaml = []
        for run in range(args.emergency_runs):
            reset()
            emergency_yaml.append(emergency(backend, audit, f"e{run}", args.flags - half))

        engine = open_database(f"sqlite:///{directory / 'flags.db'}")
        sql = SqlFlagBackend(engine)
        reset()
        seeded = load_config(base, "production")
        emergency_sql = []
        for run in range(args.emergency_runs):
            sql.import_config("production", seeded, replace=True)
            emergency_sql.append(emergency(sql, audit, f"s{run}", args.flags - half))

        timed_round_trips = round_trips[0]
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(50):
                act(Action.ADVANCE, args.flags, backend, audit)(args.runs + i)
                act(Action.ROLLBACK, args.flags, backend, audit)(args.runs + i)
            profiler.disable()
            print("profile: 50 advances and 50 rollbacks")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            reset()
            profiler = cProfile.Profile()
            profiler.runcall(emergency, backend, audit, "profiled", args.flags - half)
            print(f"profile: one emergency rollback of {args.flags - half} flags")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    parent = args.dir or Path(tempfile.gettempdir())
    where = "tmpfs" if str(parent).startswith("/dev/shm") else "disk"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, files on {where} ({parent})"
    )
    print(f"{args.flags} flags; milliseconds; load average {os.getloadavg()[0]:.1f}")
    measured = (("advance", advance), ("rollback", rollback), ("baseline", baseline))
    for name, samples in measured:
        print(f"  {name:<9} {figure(samples.wall)}")
    for name, samples in measured:
        print(f"  {name:<9} CPU only: {figure(samples.cpu)}")
    base_median, base_p99 = percentiles(baseline.wall)
    for name, samples in measured[:2]:
        median, p99 = percentiles(samples.wall)
        print(
            f"  {name} / baseline: median {median / base_median:.2f}x, p99 {p99 / base_p99:.2f}x"
            f"; p99 target 50 ms: {'met' if p99 <= 50 else 'not met'}"
        )
    print(f"  emergency rollback of {args.flags - half} flags, yaml: {figure(emergency_yaml)}")
    print(f"  emergency rollback of {args.flags - half} flags, sql:  {figure(emergency_sql)}")
    print(f"  falls back to the ruamel round trip in the timed runs: {timed_round_trips}")


if __name__ == "__main__":
    main()
