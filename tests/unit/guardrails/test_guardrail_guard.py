"""A guardrail in the guard report and in the autopilot's decision, through the real
gatherer (`guard_inputs`), guards and `decide`: proven worse fails on data and rolls
back; a dry run passes and says what it would have done; a query that fails or returns
nothing for the flag fails closed for advances and never rolls back."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.autopilot.decide import Move, PlanEvidence, decide
from app.autopilot.model import RolloutPlan
from app.evidence.gates import FlagSlots, VariantSlots
from app.flags.backend import FlagSnapshot
from app.flags.loader import load_config
from app.flags.model import FlagState
from app.guardrails import parse_guardrails
from app.rollout.evidence import Measured, RailSlots, guard_inputs
from app.rollout.guards import GuardName, GuardPolicy, evaluate_guards
from queries.names import ErrorsIn

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BEGAN = NOW - timedelta(minutes=40)
SLOT = 30.0
RAIL = """
guardrails:
  - name: http_5xx
    bad: 'sum by (flag, variant) (increase(bad_total[{range}]))'
    total: 'sum by (flag, variant) (increase(all_total[{range}]))'
    flag_label: flag
    variant_label: variant
    max_increase: 0.01
    mode: MODE
"""
FLAGS = """
version: "1"
flags:
  checkout:
    state: rollout
    rollout: {percentage: 25}
"""


def _policy(mode: str = "gate") -> GuardPolicy:
    return GuardPolicy(
        min_soak=timedelta(minutes=5), guardrails=parse_guardrails(RAIL.replace("MODE", mode))
    )


def _measured(rails: dict[str, RailSlots | str], treated_failing: float) -> Measured:
    start = BEGAN.timestamp() // SLOT * SLOT
    end = NOW.timestamp() // SLOT * SLOT
    ends = start + SLOT * np.arange(1, round((end - start) / SLOT) + 1)
    n = len(ends)
    clean = VariantSlots(np.full(n, 100.0), np.zeros(n), np.full(n, 100.0))
    base = VariantSlots(np.full(n, 300.0), np.zeros(n), np.full(n, 300.0))
    del treated_failing
    return Measured(
        source="prometheus",
        newest=NOW,
        slots={"checkout": FlagSlots(ends, {"on": clean, "off": base}, np.zeros(n))},
        errors_in=ErrorsIn.REASON,
        start=start,
        end=end,
        slot=SLOT,
        guardrails=rails,
    )


def _requests(on_failing: float) -> RailSlots:
    start = BEGAN.timestamp() // SLOT * SLOT
    end = NOW.timestamp() // SLOT * SLOT
    ends = start + SLOT * np.arange(1, round((end - start) / SLOT) + 1)
    n = len(ends)
    on = (np.full(n, 100.0 * on_failing), np.full(n, 100.0))
    off = (np.full(n, 300.0 * 0.005), np.full(n, 300.0))
    return RailSlots(ends, {"checkout": {"on": on, "off": off}})


def _guards(policy: GuardPolicy, rails: dict[str, RailSlots | str]):
    path = Path(tempfile.mkdtemp()) / "feature_flags.yaml"
    path.write_text(FLAGS)
    snapshot = FlagSnapshot("production", load_config(path, "production"))
    inputs = guard_inputs(
        _measured(rails, 0.0), snapshot, "checkout", policy, at=NOW, at_step_since=BEGAN
    )
    return inputs, evaluate_guards(inputs, policy)


def _rail(results):
    [rail] = [g for g in results if g.name == GuardName.GUARDRAIL]
    return rail


def test_a_service_metric_as_good_as_control_passes():
    _, results = _guards(_policy(), {"http_5xx": _requests(0.005)})
    rail = _rail(results)
    assert rail.passed and not rail.on_data and rail.label == "guardrail http_5xx"
    assert rail.value == pytest.approx(0.0)
    assert rail.detail.startswith("http_5xx on 0.50 % of 8000 vs off 0.50 % of 24000, +0.00 pt")
    assert rail.window == "since the step began 40 min ago"


def test_a_service_metric_proven_worse_fails_on_data_and_rolls_back():
    policy = _policy()
    _, results = _guards(policy, {"http_5xx": _requests(0.05)})
    rail = _rail(results)
    assert not rail.passed and rail.on_data and not rail.dry_run
    assert rail.value == pytest.approx(0.045)
    assert ": proven worse " in rail.detail and "limit at most +1.00 pt over control" in rail.detail
    assert all(
        g.passed
        for g in results
        if g.name is not GuardName.GUARDRAIL
        and g.name in (GuardName.ERROR_RATE, GuardName.EXPOSURE)
    )
    decision = decide(_plan(), _evidence(results))
    assert decision.move is Move.ROLLBACK
    assert decision.reason.startswith("rollback 25 % → 10 %: guardrail http_5xx failed: http_5xx")


def test_in_dry_run_it_passes_and_the_decision_says_what_it_would_have_done():
    _, results = _guards(_policy("dry_run"), {"http_5xx": _requests(0.05)})
    rail = _rail(results)
    assert rail.passed and rail.on_data and rail.would_act
    assert rail.detail.startswith("dry run, would fail: http_5xx on 5.00 %")
    decision = decide(_plan(), _evidence(results))
    assert decision.move is not Move.ROLLBACK
    assert decision.reason.endswith(
        "; dry run: guardrail http_5xx would have rolled back 25 % → 10 %"
    )


@pytest.mark.parametrize(
    ("rails", "said"),
    [
        (
            {"http_5xx": "http_5xx: query failed (prometheus unavailable: timeout)"},
            "http_5xx: query failed (prometheus unavailable: timeout): fails closed for advances",
        ),
        (
            {"http_5xx": RailSlots(np.zeros(0), {})},
            "http_5xx: its query returned nothing for checkout on and off: fails closed",
        ),
    ],
)
def test_no_answer_fails_closed_for_advances_and_never_rolls_back(rails, said):
    _, results = _guards(_policy(), rails)
    rail = _rail(results)
    assert not rail.passed and not rail.on_data and rail.detail.startswith(said)
    decision = decide(_plan(), _evidence(results))
    assert decision.move is Move.WAIT and "guardrail http_5xx: " in decision.reason


def test_an_unreadable_file_blocks_advances_only():
    policy = replace(_policy(), guardrails=(), guardrails_unreadable="guardrails file g.yaml: bad")
    _, results = _guards(policy, {})
    [trouble] = [g for g in results if g.name == GuardName.GUARDRAIL]
    assert trouble.label == "guardrail file" and not trouble.passed and not trouble.on_data
    assert trouble.detail == "guardrails file g.yaml: bad: no guardrail is judged, advances wait"


def test_guardrails_share_the_plan_days_budget():
    policy = _policy()
    alone, shared = policy.gate_settings(), policy.gate_settings("checkout")
    assert shared.guardrails == 1 and alone.guardrails == 0
    assert shared.thresholds().step > alone.thresholds().step
    assert policy.gate_settings("search").guardrails == 1  # no flags filter: every flag


def _plan() -> RolloutPlan:
    return RolloutPlan(
        flag="checkout",
        environment="production",
        steps=(10.0, 25.0, 50.0),
        soak=timedelta(minutes=5),
        created_by="olga",
        created_at=NOW - timedelta(hours=3),
        expected_state=FlagState.ROLLOUT,
        expected_percentage=25.0,
        id=7,
    )


def _evidence(results) -> PlanEvidence:
    return PlanEvidence(
        now=NOW,
        state=FlagState.ROLLOUT,
        percentage=25.0,
        guards=results,
        variants=None,
        errors=None,
        treatment="on",
        baseline="off",
        window=timedelta(minutes=5),
        at_step_since=BEGAN,
        last_change=None,
    )
