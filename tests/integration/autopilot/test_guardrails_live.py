"""Your own guardrails end to end (issue 21): the simulator's flags evaluate cleanly while
the requests served under one flag's treatment start failing; a real Prometheus scrapes
it every second. The guardrail on those requests fails for that flag only and the
autopilot rolls it back by itself; in dry-run mode the same run says it would have rolled
back, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.audit import Outcome
from app.autopilot.model import PlanOptions, PlanStatus, RolloutPlan
from app.autopilot.service import set_plan
from app.demo import simulator
from app.rollout.action_model import Action, ActionRequest
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.support.identities import OPERATOR
from tests.support.live_simulation import (
    ENVIRONMENT,
    LiveSimulation,
    start_simulation,
    ticking,
    wait_until,
    write_flags,
)
from tests.support.openfeature import start_scraping_prometheus, wait_for_samples
from tests.support.prometheus import PrometheusProcess

pytestmark = pytest.mark.prometheus

CLEAN = "checkout_ramp"  # its requests never regress
REGRESS = "search_regress"
GUARDRAILS = """
guardrails:
  - name: http_5xx
    description: 5xx ratio of the requests served under each variant
    bad: 'sum by (feature_flag_key, variant) (increase(served_requests_total{code=~"5..", environment="{environment}"}[{range}]))'
    total: 'sum by (feature_flag_key, variant) (increase(served_requests_total{environment="{environment}"}[{range}]))'
    flag_label: feature_flag_key
    variant_label: variant
    max_increase: 0.01
    mode: MODE
"""  # noqa: E501 - the form users write


@dataclass
class Stack:
    simulation: LiveSimulation
    prometheus: PrometheusProcess
    runtime: Runtime


def _stack(tmp_path: Path, mode: str) -> Iterator[Stack]:
    flags = write_flags(tmp_path, {CLEAN: 25, REGRESS: 25})
    rails = tmp_path / "guardrails.yaml"
    rails.write_text(GUARDRAILS.replace("MODE", mode))
    simulation = start_simulation(flags, speed=30.0)
    prometheus: PrometheusProcess | None = None
    try:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        prometheus = start_scraping_prometheus({"simulator": [simulation.target]}, workdir)
        wait_for_samples(
            prometheus.url,
            f'served_requests_total{{environment="{ENVIRONMENT}",feature_flag_key="{REGRESS}"}}',
            timedelta(seconds=12),
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
            autopilot_window_seconds=10,
            autopilot_pause_after_ticks=3,
            evidence_slot_seconds=1,
            guardrails_file=rails,
        )
        yield Stack(simulation, prometheus, open_runtime(settings))
    finally:
        if prometheus is not None:
            prometheus.stop()
        simulation.stop()


@pytest.fixture
def gating(tmp_path: Path, no_rollout_environment: None, monkeypatch: pytest.MonkeyPatch):
    for flag in (CLEAN, REGRESS):
        monkeypatch.setitem(simulator.ERROR_PROBABILITY, flag, {"production": 0.0, "staging": 0.0})
    yield from _stack(tmp_path, "gate")


@pytest.fixture
def dry_run(tmp_path: Path, no_rollout_environment: None, monkeypatch: pytest.MonkeyPatch):
    for flag in (CLEAN, REGRESS):
        monkeypatch.setitem(simulator.ERROR_PROBABILITY, flag, {"production": 0.0, "staging": 0.0})
    yield from _stack(tmp_path, "dry_run")


def _plan(runtime: Runtime, flag: str) -> RolloutPlan:
    return set_plan(
        runtime.plans,
        runtime.audit,
        OPERATOR,
        runtime.backend.load(ENVIRONMENT),
        flag,
        PlanOptions(steps=(25.0, 50.0), soak=timedelta(seconds=3), stop_at=25),
        now=datetime.now(UTC),
    )


def _plan_of(runtime: Runtime, flag: str) -> RolloutPlan:
    plan = runtime.plans.get(ENVIRONMENT, flag)
    assert plan is not None
    return plan


def _run(stack: Stack, until: Callable[[], bool], what: str) -> datetime:
    """Both plans held at 25 % on healthy data, then the regressed requests injected;
    ticks until `until`. Returns when the regression began."""
    runtime = stack.runtime
    _plan(runtime, CLEAN)
    _plan(runtime, REGRESS)
    stop, thread = ticking(runtime.autopilot("e2e").run)
    try:
        wait_until(
            "both plans hold at 25 % on healthy data",
            lambda: all(
                "waits for a person" in _plan_of(runtime, f).last_decision for f in (CLEAN, REGRESS)
            ),
            timeout=60,
        )
        assert runtime.audit.entries(environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)) == []
        injected = datetime.now(UTC)
        stack.simulation.workload.fail_requests(REGRESS, 0.3)
        wait_until(what, until, timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    return injected


def test_a_regressed_service_metric_rolls_back_that_flag_only(gating: Stack) -> None:
    runtime = gating.runtime
    injected = _run(
        gating,
        lambda: _plan_of(runtime, REGRESS).status is PlanStatus.PAUSED,
        f"{REGRESS} rolled back",
    )
    [rollback] = runtime.audit.entries(
        REGRESS, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)
    )
    assert (rollback.actor, rollback.action) == ("autopilot", "rollback")
    assert (rollback.from_percentage, rollback.to_percentage) == (25.0, 0.0)
    assert rollback.at > injected
    failed = {g["name"]: g for g in rollback.guards if not g["passed"]}
    assert list(failed) == ["guardrail http_5xx"], failed  # the flag's own errors are clean
    # the estimate since the step began, diluted by the healthy seconds before the
    # injection; the window that proved it is named in the detail
    assert failed["guardrail http_5xx"]["on_data"] and failed["guardrail http_5xx"]["value"] > 0
    assert "proven worse" in failed["guardrail http_5xx"]["detail"]
    assert "guardrail http_5xx failed" in _plan_of(runtime, REGRESS).status_reason
    # one tick asks the flags' questions once and each guardrail's two queries once for
    # every flag of the environment: the newest sample, the slot counts, the error
    # counter's and the config versions, then the guardrail's bad and total
    assert runtime.autopilot("count").tick().queries == 4 + 2
    # the other flag's requests are fine: its plan still holds, nothing applied to it
    assert runtime.audit.entries(CLEAN, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)) == []
    assert _plan_of(runtime, CLEAN).status is PlanStatus.ACTIVE
    # the guard report of a manual advance names the guardrail with its numbers
    preview = runtime.preview(
        ActionRequest(Action.ADVANCE, ENVIRONMENT, "(preview)", OPERATOR, flag=CLEAN)
    )
    [rail] = [g for g in preview.guards if g.label == "guardrail http_5xx"]
    assert rail.passed and rail.value is not None and abs(rail.value) < 0.01
    assert "on " in rail.detail and " vs off " in rail.detail


def test_in_dry_run_the_same_regression_is_recorded_and_nothing_changes(dry_run: Stack) -> None:
    runtime = dry_run.runtime
    said = "dry run: guardrail http_5xx would have rolled back 25 % → 0 %"
    _run(dry_run, lambda: said in _plan_of(runtime, REGRESS).last_decision, said)
    assert runtime.audit.entries(environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,)) == []
    assert runtime.backend.load(ENVIRONMENT).flag(REGRESS).percentage == 25.0
    assert _plan_of(runtime, REGRESS).status is PlanStatus.ACTIVE
    assert said not in _plan_of(runtime, CLEAN).last_decision
