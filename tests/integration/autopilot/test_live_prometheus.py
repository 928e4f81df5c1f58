"""The autopilot end to end on the demo simulator's live traffic, scraped every second by
a real Prometheus of this test's own: a healthy flag ramps through its plan, a flag whose
treatment starts failing at 25 % is rolled back by itself (time to mitigate measured and
written to the test's temporary directory), and a Prometheus stopped mid-plan never lets
a plan advance."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.audit import Outcome
from app.autopilot.decide import Move
from app.autopilot.model import PlanOptions, PlanStatus, RolloutPlan
from app.autopilot.service import set_plan
from app.demo import simulator
from app.flags.model import FlagState
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.support.identities import OPERATOR
from tests.support.live_simulation import (
    ENVIRONMENT,
    LiveSimulation,
    mitigation,
    start_simulation,
    ticking,
    wait_until,
    write_flags,
)
from tests.support.openfeature import start_scraping_prometheus, wait_for_samples
from tests.support.prometheus import PrometheusProcess

pytestmark = pytest.mark.prometheus

RAMP = "checkout_ramp"  # about 250 evaluations/s in the simulated production
REGRESS = "search_regress"  # about 340/s
WINDOW_SECONDS = 10
SOAK = timedelta(seconds=3)


@dataclass
class LiveStack:
    simulation: LiveSimulation
    prometheus: PrometheusProcess
    runtime: Runtime
    state: Path


@pytest.fixture
def live(
    tmp_path: Path, no_rollout_environment: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveStack]:
    """The simulator on a flags file of two flags (no failures of their own: only the
    injected regression fails), this test's Prometheus scraping it every second with a
    full window in, and a runtime configured as ROLLOUT_AUTOPILOT_* would: a tick a
    second, a 10 s window, three ticks without data pause a plan."""
    for flag in (RAMP, REGRESS):
        monkeypatch.setitem(simulator.ERROR_PROBABILITY, flag, {"production": 0.0, "staging": 0.0})
    flags = write_flags(tmp_path, {RAMP: 5, REGRESS: 25})
    simulation = start_simulation(flags, speed=30.0)
    prometheus: PrometheusProcess | None = None
    try:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        prometheus = start_scraping_prometheus({"simulator": [simulation.target]}, workdir)
        wait_for_samples(
            prometheus.url,
            f'feature_flag_evaluations_total{{environment="{ENVIRONMENT}",reason="split"}}',
            timedelta(seconds=WINDOW_SECONDS + 2),
        )
        settings = load_settings(
            state_dir=tmp_path,
            flags_file=flags,
            database_url=f"sqlite:///{tmp_path / 'metrics.db'}",
            prometheus_url=prometheus.url,
            environment=ENVIRONMENT,
            stale_after_seconds=10,
            autopilot_interval_seconds=1,
            autopilot_lease_seconds=5,
            autopilot_window_seconds=WINDOW_SECONDS,
            autopilot_pause_after_ticks=3,
            evidence_slot_seconds=1,  # scraped every second: judged a second after a step
        )
        yield LiveStack(simulation, prometheus, open_runtime(settings), tmp_path)
    finally:
        if prometheus is not None:
            prometheus.stop()
        simulation.stop()


def a_plan(runtime: Runtime, flag: str, steps: tuple[float, ...], stop_at: float) -> RolloutPlan:
    return set_plan(
        runtime.plans,
        runtime.audit,
        OPERATOR,
        runtime.backend.load(ENVIRONMENT),
        flag,
        PlanOptions(steps=steps, soak=SOAK, stop_at=stop_at),
        now=datetime.now(UTC),
    )


def plan_of(runtime: Runtime, flag: str) -> RolloutPlan:
    plan = runtime.plans.get(ENVIRONMENT, flag)
    assert plan is not None
    return plan


def test_a_healthy_flag_ramps_and_a_regression_at_25_percent_is_rolled_back_by_itself(
    live: LiveStack,
) -> None:
    runtime = live.runtime
    ramp = a_plan(runtime, RAMP, (5.0, 10.0, 25.0), stop_at=25)
    regress = a_plan(runtime, REGRESS, (25.0, 50.0), stop_at=25)  # 50 % waits for a person
    stop, thread = ticking(runtime.autopilot("e2e").run)
    try:
        wait_until(
            f"{REGRESS} holds at 25 % on healthy data",
            lambda: "waits for a person" in plan_of(runtime, REGRESS).last_decision,
            timeout=60,
        )
        injected_at = live.simulation.fail_treatment(REGRESS, 0.5)
        wait_until(
            f"{REGRESS} rolled back",
            lambda: plan_of(runtime, REGRESS).status is PlanStatus.PAUSED,
            timeout=60,
        )
        wait_until(
            f"{RAMP} at 25 %",
            lambda: plan_of(runtime, RAMP).expected_percentage == 25.0,
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    # the healthy flag: 5 → 10 → 25, each step applied once, in order, by the autopilot
    applied = runtime.audit.entries(RAMP, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,))
    steps = [(e.actor, e.action, e.from_percentage, e.to_percentage) for e in reversed(applied)]
    assert steps == [("autopilot", "advance", 5.0, 10.0), ("autopilot", "advance", 10.0, 25.0)]
    assert len({e.idempotency_key for e in applied}) == 2
    assert runtime.backend.load(ENVIRONMENT).flag(RAMP).percentage == 25.0
    ramped = plan_of(runtime, RAMP)
    assert ramped.status is PlanStatus.ACTIVE and ramped.id == ramp.id

    # the regression: rolled back from 25 % to below the plan's first step, and paused
    [rollback] = runtime.audit.entries(
        REGRESS, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)
    )
    assert (rollback.actor, rollback.action) == ("autopilot", "rollback")
    assert (rollback.from_percentage, rollback.to_percentage) == (25.0, 0.0)
    assert rollback.at > injected_at
    failed = {g["name"]: g for g in rollback.guards if not g["passed"]}
    assert "error_rate" in failed and failed["error_rate"]["value"] > 0.01
    flag = runtime.backend.load(ENVIRONMENT).flag(REGRESS)
    assert (flag.state, flag.percentage) == (FlagState.DISABLED, 0.0)
    paused = plan_of(runtime, REGRESS)
    assert "rollback 25 % → 0 %: error_rate failed" in paused.status_reason
    events = runtime.plans.events(regress.id)
    [event] = [e for e in events if e.kind == str(Move.ROLLBACK)]
    assert event.audit_id == rollback.id
    assert event.failure_seen_at is not None and event.failure_seen_at <= event.at
    assert event.seconds_to_mitigate is not None

    # time to mitigate, as Prometheus saw it
    figures = mitigation(live.prometheus.url, REGRESS, injected_at, rollback.at)
    assert figures is not None, "no failing scrape of the treatment after the injection"
    assert injected_at < figures.first_failing_scrape < rollback.at
    assert figures.treatment_per_second_before > 10
    assert figures.below_one_percent_at is not None, "the treatment kept being evaluated"
    report = {
        **figures.as_json(),
        "event_seconds_to_mitigate": event.seconds_to_mitigate,
        "scrape_interval_seconds": 1,
        "tick_interval_seconds": 1,
        "window_seconds": WINDOW_SECONDS,
    }
    (live.state / "time_to_mitigate.json").write_text(json.dumps(report, indent=2))
    print(f"\ntime to mitigate: {json.dumps(report)}")


def test_prometheus_stopped_mid_plan_never_advances_and_the_plan_pauses_saying_why(
    live: LiveStack,
) -> None:
    runtime = live.runtime
    a_plan(runtime, RAMP, (5.0, 10.0, 25.0), stop_at=25)
    controller = runtime.autopilot("fail-closed")
    first = controller.tick().outcome(RAMP)
    assert first is not None and first.decision.move is Move.ADVANCE
    assert runtime.backend.load(ENVIRONMENT).flag(RAMP).percentage == 10.0
    # a full window (and the soak) at 10 %: the next tick would advance on this data
    time.sleep(WINDOW_SECONDS + 2)
    live.prometheus.stop()

    said = [controller.tick().outcome(RAMP) for _ in range(3)]
    moves = [o.decision.move for o in said if o is not None]
    assert moves == [Move.WAIT, Move.WAIT, Move.PAUSE]
    assert all(o is not None and o.decision.no_data for o in said)
    assert "waited: no data" in said[0].said if said[0] else False
    stored = plan_of(runtime, RAMP)
    assert stored.status is PlanStatus.PAUSED
    assert stored.status_reason.startswith("paused: no data for 3 ticks (no data: ")
    assert "prometheus" in stored.status_reason.lower()
    assert stored.expected_percentage == 10.0
    assert runtime.backend.load(ENVIRONMENT).flag(RAMP).percentage == 10.0
    applied = runtime.audit.entries(RAMP, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,))
    assert [e.to_percentage for e in applied] == [10.0]
    assert controller.tick().outcome(RAMP) is None  # paused: the plan is left alone
