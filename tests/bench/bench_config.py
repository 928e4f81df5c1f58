"""Config loading: hot reload time of a 1,000-flag config, and how fast hostile YAML
is refused.

Run: `make bench` (or `uv run python -m tests.bench.bench_config [--flags N] [--runs N]
[--hostile-runs N] [--profile]`).

- Reload: target 20 ms; baselines the seed's target (100 ms) and, in the same run, a
  first load of the same files (nothing cached: parse, limit check, validation).
- Hostile YAML (an aliases bomb, 100,000 nested brackets in flow and block style, a
  50 MB file): each is checked by `check_config` in a fresh process, as `check-config`
  does. Target: refused with a clear error in <= 1 s and <= 100 MB more peak RSS than
  a process checking the bundled config, measured in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from app.flags.evaluator import EvaluationMetrics, FlagEvaluator
from app.flags.loader import BUNDLED_CONFIG, check_config, load_config
from tests.bench.workloads import write_config
from tests.support.hostile_yaml import block_nesting, fifty_megabytes, flow_nesting, laughs

SEED_RELOAD_MS = 100.0
TARGET_RELOAD_MS = 20.0
TARGET_REFUSAL_SECONDS = 1.0
TARGET_EXTRA_RSS_MB = 100.0
HOSTILE: dict[str, Callable[[], str | bytes]] = {
    "aliases bomb, 9 x 9 (2 KB)": laughs,
    "100,000 nested [ (flow)": flow_nesting,
    "100,000 nested - (block)": block_nesting,
    "50 MB file": fifty_megabytes,
}
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


def peak_rss_mb() -> float:
    """This process's peak RSS. Not `ru_maxrss`: Linux carries that over from the parent
    through fork and exec, so every child would report at least the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: Path) -> None:
    """Check `path` as check-config does; print seconds, peak RSS and the first issue."""
    started = time.perf_counter()
    issues = check_config(path)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    first = str(issues[0]) if issues else "valid"
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "first": first}))


def checked(path: Path, runs: int) -> tuple[list[float], list[float], str]:
    """Seconds and peak RSS (MB) of `runs` fresh processes checking `path`."""
    seconds, peaks, first = [], [], ""
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_config", "--child", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{path}: exit {done.returncode}\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        seconds.append(result["seconds"])
        peaks.append(result["peak_mb"])
        first = result["first"]
    return seconds, peaks, first


def hostile(directory: Path, runs: int) -> None:
    base_seconds, base_peaks, _ = checked(BUNDLED_CONFIG, runs)
    baseline_peak = statistics.median(base_peaks)
    print(f"hostile YAML, each checked in {runs} fresh processes (as check-config does)")
    print(f"  baseline: the bundled config, s   {spread(base_seconds, 4)}")
    print(f"  baseline peak RSS, MB              {spread(base_peaks)}")
    for name, content in HOSTILE.items():
        path = directory / "hostile.yaml"
        data = content()
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        del data  # not carried into the children
        seconds, peaks, first = checked(path, runs)
        extra = [peak - baseline_peak for peak in peaks]
        met = (
            statistics.median(seconds) <= TARGET_REFUSAL_SECONDS
            and max(extra) <= TARGET_EXTRA_RSS_MB
            and "refused" in first
        )
        print(f"  {name}")
        print(f"    refused in, s                    {spread(seconds, 4)}")
        print(f"    extra peak RSS, MB               {spread(extra)}")
        print(f"    message: {first.replace(str(path), 'hostile.yaml')[:150]}")
        print(
            f"    target <= {TARGET_REFUSAL_SECONDS:g} s and <= {TARGET_EXTRA_RSS_MB:g} MB extra: "
            f"{'met' if met else 'not met'}"
        )
        path.unlink()


def first_load_times(flags: int, runs: int) -> list[float]:
    """Milliseconds of `load_config` on a fresh copy of the files (no cache can hit)."""
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            base = write_config(Path(tmp), flags)
            started = time.perf_counter()
            load_config(base, ENVIRONMENT)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hostile-runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    with tempfile.TemporaryDirectory() as tmp:
        base = write_config(Path(tmp), args.flags)
        reloads = reload_times(base, args.runs, args.profile)
    first_loads = first_load_times(args.flags, max(3, args.runs // 10))

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (pinned to one), "
        f"Python {platform.python_version()}"
    )
    print(f"reload of {args.flags} flags, ms")
    print(f"  maybe_reload                {spread(reloads)}")
    print(f"  baseline: first load        {spread(first_loads)}")
    median = statistics.median(reloads)
    print(
        f"  seed target {SEED_RELOAD_MS:g} ms: {median / SEED_RELOAD_MS:.2f}x; "
        f"target {TARGET_RELOAD_MS:g} ms: {median / TARGET_RELOAD_MS:.2f}x "
        f"({'met' if median <= TARGET_RELOAD_MS else 'not met'})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        hostile(Path(tmp), args.hostile_runs)


if __name__ == "__main__":
    main()
