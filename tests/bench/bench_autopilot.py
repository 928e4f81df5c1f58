"""The autopilot's figures, each beside a baseline measured in the same run.

Run: `make bench` (or `uv run python -m tests.bench.bench_autopilot [--regressions N]`).
(a) time to mitigate over N injected regressions (default 6): the demo simulator's live
    traffic scraped every second by a real Prometheus, the controller ticking every
    second over a 10 s window; each regression fails half of one flag's treatment at
    25 % and the plan rolls it back to 0 %. Measured from the injection and from the
    first failing scrape to the rollback applied (its audit record), and to the
    treatment's evaluations below 1 % of before (Prometheus). Baseline: an oracle that
    rolls back by hand 0.3 s after the injection (what no controller can beat: the
    flags file written, the evaluator's reload, the next scrape).
(b) PromQL queries per tick at 1, 100 and 1,000 planned flags (and with a plan gating
    on the canary), and a tick's time at 1,000 planned flags against the overview build
    of the same 1,000 flags in the same run (backfilled Prometheus, queries pinned).
(c) failover: two `autopilot` processes on one PostgreSQL, the leader `kill -9`ed at a
    random moment: time until the standby's first tick as leader. Baseline: the leader
    stopped cleanly (SIGTERM releases the lease).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.audit import Outcome
from app.autopilot.controller import LEASE
from app.autopilot.model import PlanOptions, PlanStatus, RolloutPlan
from app.autopilot.service import set_plan
from app.autopilot.store import PlanStore
from app.demo import simulator
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.bench.bench_overview import Tier
from tests.bench.workloads import END, Workload
from tests.conftest import fresh_postgres_database
from tests.support.bundled import copy_bundled_config
from tests.support.live_simulation import (
    ENVIRONMENT,
    LiveSimulation,
    Mitigation,
    mitigation,
    start_simulation,
    write_flags,
)
from tests.support.openfeature import start_scraping_prometheus, wait_for_samples

OLGA = Identity("olga", Role.OPERATOR, "bench")
REGRESSIONS = ("regression_a", "regression_e", "regression_f", "regression_h", "regression_i")
EXTRA = ("regression_j", "regression_k", "regression_l", "regression_m", "regression_n")
ORACLES = ("oracle_flag", "regression_o", "regression_p")
WINDOW_SECONDS = 10
LEASE_SECONDS = 3.0
INTERVAL_SECONDS = 0.5


def spread(samples: list[float], unit: str = " s", digits: int = 2) -> str:
    if not samples:
        return "no samples"
    return (
        f"median {statistics.median(samples):.{digits}f}{unit}  "
        f"min {min(samples):.{digits}f}  max {max(samples):.{digits}f}  (n={len(samples)})"
    )


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# (a) time to mitigate


def time_to_mitigate(tmp: Path, regressions: int) -> None:
    flags = (REGRESSIONS + EXTRA)[:regressions]
    for flag in (*flags, *ORACLES):  # only the injected regression fails
        simulator.ERROR_PROBABILITY[flag] = {"production": 0.0, "staging": 0.0}
    flags_file = write_flags(tmp, dict.fromkeys((*flags, *ORACLES), 25.0))
    simulation = start_simulation(flags_file, speed=20.0)
    workdir = tmp / "prometheus"
    workdir.mkdir()
    prometheus = start_scraping_prometheus({"simulator": [simulation.target]}, workdir)
    try:
        wait_for_samples(
            prometheus.url,
            f'feature_flag_evaluations_total{{environment="{ENVIRONMENT}",reason="split"}}',
            timedelta(seconds=WINDOW_SECONDS + 2),
        )
        runtime = open_runtime(
            load_settings(
                state_dir=tmp,
                flags_file=flags_file,
                database_url=f"sqlite:///{tmp / 'metrics.db'}",
                prometheus_url=prometheus.url,
                environment=ENVIRONMENT,
                stale_after_seconds=10,
                autopilot_interval_seconds=1,
                autopilot_window_seconds=WINDOW_SECONDS,
                approval_environments=[],
            )
        )
        for flag in flags:
            set_plan(
                runtime.plans,
                runtime.audit,
                OLGA,
                runtime.backend.load(ENVIRONMENT),
                flag,
                PlanOptions(steps=(25.0, 50.0), soak=timedelta(seconds=3), stop_at=25),
                now=datetime.now(UTC),
            )
        oracle = [_oracle(runtime, prometheus.url, simulation, flag) for flag in ORACLES]
        stop = threading.Event()
        controller = runtime.autopilot("bench")
        loop = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        loop.start()
        found: list[Mitigation] = []
        try:
            for flag in flags:
                holding = wait_until(
                    lambda f=flag: "waits for a person" in _plan(runtime, f).last_decision, 60
                )
                assert holding, _plan(runtime, flag).last_decision
                time.sleep(random.uniform(0, 1))
                injected = simulation.fail_treatment(flag, 0.5)
                paused = wait_until(
                    lambda f=flag: _plan(runtime, f).status is PlanStatus.PAUSED, 60
                )
                assert paused, f"{flag} not rolled back"
                [record] = runtime.audit.entries(
                    flag, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)
                )
                assert record.action == "rollback" and record.to_percentage == 0
                figures = mitigation(prometheus.url, flag, injected, record.at)
                assert figures is not None and figures.below_one_percent_at is not None
                found.append(figures)
        finally:
            stop.set()
            loop.join(timeout=30)
    finally:
        prometheus.stop()
        simulation.stop()
    _print_mitigations(found, oracle)


def _plan(runtime: Runtime, flag: str) -> RolloutPlan:
    plan = runtime.plans.get(ENVIRONMENT, flag)
    assert plan is not None
    return plan


def _oracle(runtime: Runtime, url: str, simulation: LiveSimulation, flag: str) -> Mitigation:
    """A person who rolls `flag` back to 0 % 0.3 s after its regression began."""
    injected = simulation.fail_treatment(flag, 0.5)
    time.sleep(0.3)
    result = runtime.execute(
        ActionRequest(Action.KILL, ENVIRONMENT, "oracle: the regression began", OLGA, flag=flag)
    )
    assert result.applied, result.error
    figures = mitigation(url, flag, injected, result.audit[0].at)
    assert figures is not None and figures.below_one_percent_at is not None
    return figures


def _print_mitigations(found: list[Mitigation], oracle: list[Mitigation]) -> None:
    def from_injection(m: Mitigation, at: datetime | None) -> float:
        assert at is not None
        return (at - m.injected_at).total_seconds()

    print(
        f"  scrape interval 1 s, tick interval 1 s, window {WINDOW_SECONDS} s; "
        f"treatment before: {spread([m.treatment_per_second_before for m in found], '/s', 0)}"
    )
    rows = [
        (
            "autopilot: first failing scrape → rollback applied",
            [m.seconds_to_rollback for m in found],
        ),
        (
            "autopilot: first failing scrape → treatment < 1 %",
            [m.seconds_to_below_one_percent or 0.0 for m in found],
        ),
        (
            "autopilot: injection → rollback applied",
            [from_injection(m, m.rollback_applied_at) for m in found],
        ),
        (
            "autopilot: injection → treatment < 1 %",
            [from_injection(m, m.below_one_percent_at) for m in found],
        ),
        (
            "baseline, oracle rollback 0.3 s in: injection → treatment < 1 %",
            [from_injection(m, m.below_one_percent_at) for m in oracle],
        ),
    ]
    for label, samples in rows:
        print(f"  {label:<66} {spread(samples)}")


# (b) queries per tick and tick time at 1,000 planned flags


def queries_per_tick(tmp: Path, runs: int) -> None:
    tier = Tier(Workload(1000), tmp / "tier")
    flags_file = tmp / "tier" / "feature_flags.yaml"
    # the backfill splits 2 of 5 split-or-default evaluations to the treatment: 40 %
    flags_file.write_text(flags_file.read_text().replace("percentage: 25", "percentage: 40"))
    try:
        runtime = open_runtime(
            load_settings(
                state_dir=tmp / "state",
                flags_file=flags_file,
                database_url=f"sqlite:///{tmp / 'plans.db'}",
                prometheus_url=tier.server.url,
                environment=ENVIRONMENT,
                autopilot_window_seconds=60,
                rate_window_seconds=60,
                sparkline_minutes=5,
                approval_environments=[],
            )
        )
        controller = runtime.autopilot("bench")
        controller.clock = lambda: END  # the backfill ends there
        keys = sorted(runtime.backend.load(ENVIRONMENT).config.flags)
        planned = 0
        print(f"  [{tier.describe()}]")
        for count in (1, 100, 1000):
            started = time.perf_counter()
            for flag in keys[planned:count]:
                set_plan(
                    runtime.plans,
                    runtime.audit,
                    OLGA,
                    runtime.backend.load(ENVIRONMENT),
                    flag,
                    PlanOptions(steps=(40.0, 50.0), soak=timedelta(0)),
                    now=datetime.now(UTC),
                )
            planned = count
            setting = time.perf_counter() - started
            first = controller.tick()
            steady = [controller.tick() for _ in range(runs)]
            moves = {str(o.decision.move) for r in (first, *steady) for o in r.outcomes}
            assert {len(r.outcomes) for r in (first, *steady)} == {count}, moves
            queries = sorted({r.queries for r in (first, *steady)})
            print(
                f"  {count:>5} planned flags: {queries} PromQL queries per tick "
                f"(one query per plan and question would be {4 * count:,}); decisions {moves}; "
                f"first tick {first.seconds * 1000:.0f} ms (writes every plan's decision), "
                f"steady {spread([r.seconds * 1000 for r in steady], ' ms', 0)}"
                f"  [plans set in {setting:.1f} s]"
            )
        canary_gated = runtime.plans.get(ENVIRONMENT, keys[0])
        assert canary_gated is not None
        runtime.plans.save(replace(canary_gated, gates=canary_gated.gates | {"canary"}))
        gated = controller.tick()
        print(
            f"   1000 planned flags, one gating on the canary: {gated.queries} PromQL queries "
            "per tick"
        )

        ticks = [controller.tick() for _ in range(runs)]
        overview_ms: list[float] = []
        overview_queries: set[int] = set()
        runtime.overview(ENVIRONMENT, at=END)  # warm
        for _ in range(runs):
            started = time.perf_counter()
            overview = runtime.overview(ENVIRONMENT, at=END)
            overview_ms.append((time.perf_counter() - started) * 1000)
            overview_queries.add(overview.queries)
            assert overview.source == "prometheus" and len(overview.rows) == 1000
        tick_ms = [t.seconds * 1000 for t in ticks]
        ratio = statistics.median(tick_ms) / statistics.median(overview_ms)
        print(f"  tick at 1,000 plans (steady)       {spread(tick_ms, ' ms', 0)}")
        print(
            f"  baseline: overview build, 1,000 flags {spread(overview_ms, ' ms', 0)} "
            f"({sorted(overview_queries)} PromQL queries)"
        )
        print(f"  ratio tick / overview (median)     {ratio:.2f}x")
    finally:
        tier.server.stop()


# (c) failover


@contextmanager
def controller_process(
    environment: dict[str, str], holder: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.autopilot_process", holder],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def failover(tmp: Path, rounds: int) -> None:
    copy_bundled_config(tmp)
    with fresh_postgres_database("rollout_bench_failover") as url:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
        environment = {
            **clean,
            "ROLLOUT_DATABASE_URL": url,
            "ROLLOUT_STATE_DIR": str(tmp),
            "ROLLOUT_FLAGS_FILE": str(tmp / "feature_flags.yaml"),
            "ROLLOUT_AUTOPILOT_INTERVAL_SECONDS": f"{INTERVAL_SECONDS:g}",
            "ROLLOUT_AUTOPILOT_LEASE_SECONDS": f"{LEASE_SECONDS:g}",
        }
        runtime = open_runtime(load_settings(database_url=url, state_dir=tmp))
        store = runtime.plans
        killed: list[float] = []
        stopped: list[float] = []
        for index in range(rounds + 3):
            clean_stop = index >= rounds
            leader, standby = f"leader-{index}", f"standby-{index}"
            with (
                controller_process(environment, leader, tmp / f"{leader}.log") as first,
            ):
                # the leader first, then the standby: it must find the lease taken
                assert wait_until(lambda h=leader: _leads(store, h), 60), f"{leader} did not lead"
                log = tmp / f"{standby}.log"
                with controller_process(environment, standby, log):
                    started = wait_until(lambda f=log: b"ticking" in f.read_bytes(), 60)
                    assert started, log.read_text()
                    time.sleep(1)  # the standby ticking, as a standby
                    time.sleep(random.uniform(0, INTERVAL_SECONDS))
                    at = datetime.now(UTC)
                    first.send_signal(signal.SIGTERM if clean_stop else signal.SIGKILL)
                    took = wait_until(lambda h=standby: _leads(store, h), 30)
                    assert took, "the standby never took over"
                    beat = store.heartbeat(LEASE)
                    assert beat is not None
                    seconds = (beat.acquired_at - at).total_seconds()
                    (stopped if clean_stop else killed).append(seconds)
        if runtime.engine is not None:
            runtime.engine.dispose()
    print(f"  lease {LEASE_SECONDS:g} s, tick interval {INTERVAL_SECONDS:g} s, two processes")
    print(f"  kill -9 of the leader → standby's first tick as leader  {spread(killed)}")
    print(f"  baseline: leader stopped cleanly (lease released)      {spread(stopped)}")


def _leads(store: PlanStore, holder: str) -> bool:
    beat = store.heartbeat(LEASE)
    return beat is not None and beat.holder == holder and beat.ticks > 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regressions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="failover rounds")
    parser.add_argument("--only", choices=("a", "b", "c"))
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "a"):
            print(f"\n(a) time to mitigate, {args.regressions} injected regressions")
            (root / "a").mkdir()
            time_to_mitigate(root / "a", args.regressions)
        if args.only in (None, "b"):
            print("\n(b) PromQL queries per tick; tick vs overview build at 1,000 flags")
            (root / "b").mkdir()
            queries_per_tick(root / "b", args.runs)
        if args.only in (None, "c"):
            print(f"\n(c) failover, {args.rounds} rounds (and 3 clean stops)")
            (root / "c").mkdir()
            failover(root / "c", args.rounds)


if __name__ == "__main__":
    main()
