"""How long `autopilot backtest` takes for 24 h of one flag at 30 s ticks, beside
baselines measured in the same run.

Run: `make bench` (or `uv run python -m tests.bench.bench_backtest [--repeats N]`).
A real Prometheus backfilled (`promtool tsdb create-blocks-from openmetrics`) with a day
of Poisson A/A evaluations of one flag (seed preset names, 20/s, 10 % share); the plan
10 → 25 → 50 → 100 %, soak 30 min (two advances, then it holds: every tick judged).
Figures, each the median of `--repeats` runs (wall and CPU seconds):
(a) the whole backtest (`run_backtest`: measure once, replay 2,881 ticks);
(b) baseline: measuring alone (`measure_history`, the one set of range queries);
(c) the replay alone on those counts (the live `plan_evidence` → `decide` per tick);
(d) baseline: what the live controller's measurement costs per tick
    (`measure_environment` since the step began, as a tick asks it) × 2,881, from 60
    ticks spread over the day;
(e) the command end to end (`rollout-dashboard autopilot backtest … --json`, a process
    of its own: start-up, settings, flags, audit log, Prometheus, replay, JSON), its
    byte code cached; (e') once without byte code (compiling every import first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.audit import AuditLog
from app.autopilot.backtest import (
    backtest_plan,
    backtest_ticks,
    history_start,
    measure_history,
    replay,
)
from app.autopilot.backtest import run_backtest as backtest
from app.autopilot.model import PlanOptions
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.evidence import judged_start, measure_environment
from app.rollout.guards import ADVANCE_GUARDS, GuardName, GuardPolicy
from queries.prometheus import PrometheusMetrics
from tests.support.backtest_history import poisson_rollups
from tests.support.bundled import copy_bundled_config
from tests.support.prometheus import openmetrics_from_rollups, start_prometheus

ENV = "production"
FLAG = "phase1_config_externalization"  # rollout 10 %, no dependencies
START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
TICK = timedelta(seconds=30)
POLICY = GuardPolicy()
GATES = frozenset(g for g in ADVANCE_GUARDS if g != GuardName.PROPAGATION)


def timed(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `work` over `repeats` runs (CPU: this process's
    and its finished children's)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), _cpu()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _cpu() -> float:
    me, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main(repeats: int) -> None:
    print(
        f"# autopilot backtest: 24 h of one flag at 30 s ticks ({platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})\n"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    rollups = poisson_rollups(
        ENV,
        FLAG,
        START - timedelta(hours=1),
        START + DAY + timedelta(minutes=5),
        lambda _at: (0.10, 0.005, 0.005),
        seed=3,
    )
    server = start_prometheus(openmetrics_from_rollups(rollups), work / "prometheus")
    try:
        state = work / "state"
        state.mkdir()
        engine = open_database(f"sqlite:///{state / 'metrics.db'}")
        backend = YamlFlagBackend(copy_bundled_config(state))
        audit = AuditLog(engine, state / "journal.jsonl")
        source = PrometheusMetrics(server.url)
        snapshot = backend.load(ENV)
        options = PlanOptions(steps=(10.0, 25.0, 50.0, 100.0), soak=timedelta(minutes=30))
        plan = backtest_plan(snapshot, FLAG, options, GATES)
        end = START + DAY
        ticks = backtest_ticks(START, end, TICK)
        begin = history_start(START, POLICY)

        result = backtest([source], audit, snapshot, plan, START, end, POLICY)
        moves = [str(d.move) for d in result.decisions]
        print(
            f"{len(ticks)} ticks; {moves.count('advance')} advances, "
            f"{moves.count('hold')} holds, {moves.count('wait')} waits; "
            f"{result.queries} queries; {result.stopped}\n"
        )

        whole = timed(
            lambda: backtest([source], audit, snapshot, plan, START, end, POLICY), repeats
        )
        measuring = timed(lambda: measure_history(source, ENV, begin, end, 30.0), repeats)
        measured = measure_history(source, ENV, begin, end, 30.0)
        replaying = timed(lambda: replay(plan, snapshot, measured, (), ticks, POLICY), repeats)
        sample = ticks[:: len(ticks) // 60][:60]

        def live_measurements() -> None:
            for at in sample:
                start, _ = judged_start(START, at, POLICY)
                measure_environment(source, ENV, min(start, begin), at, 30.0)

        live = timed(live_measurements, 1)
        scale = len(ticks) / len(sample)
        # byte code in a cache of its own (this machine sets PYTHONDONTWRITEBYTECODE: every
        # process would compile its imports, ~5 s): the first run fills it, cold
        env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("ROLLOUT_") and k != "PYTHONDONTWRITEBYTECODE"
            },
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "ROLLOUT_STATE_DIR": str(state),
            "ROLLOUT_FLAGS_FILE": str(state / "feature_flags.yaml"),
            "ROLLOUT_DATABASE_URL": f"sqlite:///{state / 'metrics.db'}",
            "ROLLOUT_PROMETHEUS_URL": server.url,
            "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",
        }
        command = [
            sys.executable, "-m", "app.cli", "autopilot", "backtest", FLAG, "--env", ENV,
            "--from", START.isoformat(), "--to", end.isoformat(),
            "--steps", "10,25,50,100", "--soak", "30m",
            "--gates", ",".join(sorted(GATES)), "--json",
        ]  # fmt: skip

        def run_command() -> None:
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            assert len(json.loads(done.stdout)["decisions"]) == len(ticks)

        cold = timed(run_command, 1)
        end_to_end = timed(run_command, repeats)
        print("| what | wall s | CPU s |")
        print("|---|---|---|")
        for words, (wall, cpu) in (
            ("(a) backtest: measure once + replay 2,881 ticks", whole),
            ("(b) baseline: measuring alone (one range query per metric)", measuring),
            ("(c) the replay alone (plan_evidence → decide per tick)", replaying),
            (
                "(d) baseline: a live tick's measurement × 2,881 (from 60)",
                (live[0] * scale, live[1] * scale),
            ),
            ("(e) `rollout-dashboard autopilot backtest --json`, a process", end_to_end),
            ("(e') the same, its imports compiled first (no byte code)", cold),
        ):
            print(f"| {words} | {wall:.2f} | {cpu:.2f} |")
        print(f"\n(median of {repeats}; load {os.getloadavg()[0]:.2f} at the end)")
        engine.dispose()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
