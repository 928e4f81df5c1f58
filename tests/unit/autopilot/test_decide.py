"""The autopilot's rule, one tick at a time: advance only on healthy gates, fail closed on
missing data, act on failures the data proves, and never fight a person."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.analysis.canary import Verdict
from app.analysis.failures import FlagErrors
from app.autopilot.decide import Move, PlanEvidence, SeenChange, decide
from app.autopilot.model import AllowedHours, OnFailure, PlanStatus, RolloutPlan
from app.flags.model import FlagState
from app.rollout.guards import GuardPolicy, VariantCounts, evaluate_guards
from queries.names import ErrorsIn
from tests.support.gates import judged_inputs

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday
WINDOW = timedelta(minutes=5)


def plan(**changes: object) -> RolloutPlan:
    base = RolloutPlan(
        flag="new_checkout",
        environment="production",
        steps=(1.0, 5.0, 25.0, 50.0, 100.0),
        soak=timedelta(minutes=30),
        created_by="olga",
        created_at=NOW - timedelta(hours=3),
        expected_state=FlagState.ROLLOUT,
        expected_percentage=5.0,
        id=7,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def counts(
    treated: float, treated_errors: float, base: float, base_errors: float
) -> dict[str, VariantCounts]:
    return {
        "on": VariantCounts(treated, treated_errors, treated),
        "off": VariantCounts(base, base_errors, base),
    }


def seen(
    the_plan: RolloutPlan,
    *,
    percentage: float = 5.0,
    state: FlagState = FlagState.ROLLOUT,
    variants: dict[str, VariantCounts] | None = None,
    soaked: timedelta = timedelta(minutes=40),
    fresh: bool = True,
    last_change: SeenChange | None = None,
    canary: Verdict | None = None,
    now: datetime = NOW,
    errors: FlagErrors | None = None,
) -> PlanEvidence:
    """What a tick sees: `variants` counted evenly since the step began, the guards judged
    by the real data gates and `evaluate_guards` with the plan's soak, as the controller
    judges them."""
    if variants is None:  # healthy, exactly at the configured share
        variants = counts(percentage * 100, 0, (100 - percentage) * 100, 0)
    policy = GuardPolicy(min_soak=the_plan.soak, soak_window=WINDOW)
    inputs = judged_inputs(
        policy,
        now=now,
        percentage=percentage,
        source="prometheus" if fresh else "",
        newest_sample=now - timedelta(seconds=10) if fresh else None,
        variants=variants,
        at_step_since=now - soaked,
        instance_versions={"a": "v1"},
        current_config_version="v1",
        errors=errors,
    )
    return PlanEvidence(
        now=now,
        state=state,
        percentage=percentage,
        guards=evaluate_guards(inputs, policy),
        variants=variants,
        treatment="on",
        baseline="off",
        window=WINDOW,
        at_step_since=now - soaked,
        last_change=last_change,
        canary=canary,
        canary_detail="canary fails 4 % vs 0.5 %" if canary is Verdict.FAIL else "",
        errors=errors,
    )


def test_healthy_soaked_flag_advances_to_the_next_step() -> None:
    p = plan()
    decision = decide(p, seen(p))
    assert (decision.move, decision.to) == (Move.ADVANCE, 25.0)
    assert decision.reason.startswith("advance 5 % → 25 %")
    assert not decision.failing


def test_soak_not_elapsed_waits_and_says_how_far() -> None:
    p = plan()
    decision = decide(p, seen(p, soaked=timedelta(minutes=12)))
    assert decision.move is Move.WAIT
    assert "soak 12 min of 30 min" in decision.reason


def test_a_disabled_flag_starts_at_the_first_step() -> None:
    p = plan(expected_state=FlagState.DISABLED, expected_percentage=0.0)
    decision = decide(
        p, seen(p, percentage=0.0, state=FlagState.DISABLED, variants=counts(0, 0, 5000, 0))
    )
    assert (decision.move, decision.to) == (Move.ADVANCE, 1.0)


def test_error_rate_proven_above_its_limit_rolls_back_one_step() -> None:
    p = plan(expected_percentage=25.0)
    failing = counts(2500, 400, 7500, 0)  # 4 % of all evaluations fail, threshold 1 %
    decision = decide(p, seen(p, percentage=25.0, variants=failing))
    assert (decision.move, decision.to) == (Move.ROLLBACK, 5.0)
    assert decision.gate is not None and decision.gate.name == "error_rate"
    assert decision.failing
    assert "rollback 25 % → 5 %" in decision.reason


def test_failures_counted_only_by_the_error_counter_roll_back_too() -> None:
    # issue 21: every evaluation's reason is split; the counter counted 4 % failed
    p = plan(expected_percentage=25.0)
    split = counts(2500, 0, 7500, 0)
    counted = FlagErrors(failed=400, evaluations=10_000, read_from=ErrorsIn.BOTH)
    decision = decide(p, seen(p, percentage=25.0, variants=split, errors=counted))
    assert (decision.move, decision.to) == (Move.ROLLBACK, 5.0)
    assert decision.gate is not None and decision.gate.value == pytest.approx(0.04)
    assert "4.00 % of 10000 evaluations failed" in decision.reason
    # the same failures counted in both places are not counted twice: 4 %, not 8 %
    both = FlagErrors(failed=400, evaluations=10_000, read_from=ErrorsIn.BOTH)
    twice = decide(p, seen(p, percentage=25.0, variants=counts(2500, 400, 7500, 0), errors=both))
    assert twice.gate is not None and twice.gate.value == pytest.approx(0.04)


def test_a_rollback_ignores_the_allowed_hours() -> None:
    night = AllowedHours.parse("mon-fri 09-17 Europe/Berlin")
    p = plan(expected_percentage=25.0, allowed_hours=night)
    sunday = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    decision = decide(p, seen(p, percentage=25.0, variants=counts(2500, 400, 7500, 0), now=sunday))
    assert decision.move is Move.ROLLBACK


def test_error_rate_above_its_limit_but_not_proven_waits() -> None:
    p = plan()
    few = counts(5, 2, 95, 0)  # 2 of 100 = 2 % > 1 %, but 100 evaluations prove nothing
    decision = decide(p, seen(p, variants=few))
    assert decision.move is Move.WAIT
    assert "error_rate: 2.00 % of 100 evaluations failed: above 1 %, not yet proven" in (
        decision.reason
    )
    assert decision.failing  # the time to mitigate starts at the first failing tick


def test_treatment_proven_worse_than_control_rolls_back_at_once() -> None:
    p = plan(expected_percentage=25.0)
    worse = counts(25_000, 200, 75_000, 0)  # 0.2 % overall, all of it on the treatment
    decision = decide(p, seen(p, percentage=25.0, variants=worse))
    assert (decision.move, decision.to, decision.failing) == (Move.ROLLBACK, 5.0, True)
    assert "on proven to fail more often than off" in decision.reason


def test_a_gross_failure_in_a_steps_first_minute_rolls_back_at_once() -> None:
    # 20 of the first minute's 50 treatment evaluations fail (the gross failure)
    p = plan(expected_percentage=25.0, soak=timedelta(minutes=30))
    decision = decide(
        p, seen(p, percentage=25.0, variants=counts(50, 20, 150, 0), soaked=timedelta(minutes=1))
    )
    assert (decision.move, decision.to) == (Move.ROLLBACK, 5.0)
    assert "proven above 1 %" in decision.reason


@pytest.mark.parametrize(("on_failure", "move", "to"), [("kill", Move.KILL, 0.0)])
def test_on_failure_kill(on_failure: str, move: Move, to: float) -> None:
    p = plan(expected_percentage=25.0, on_failure=OnFailure(on_failure))
    decision = decide(p, seen(p, percentage=25.0, variants=counts(2500, 400, 7500, 0)))
    assert (decision.move, decision.to) == (move, to)


def test_on_failure_pause_changes_nothing() -> None:
    p = plan(expected_percentage=25.0, on_failure=OnFailure.PAUSE)
    decision = decide(p, seen(p, percentage=25.0, variants=counts(2500, 400, 7500, 0)))
    assert decision.move is Move.PAUSE
    assert decision.to is None
    assert "error_rate failed" in decision.reason


def test_rollback_below_the_first_step_goes_to_zero() -> None:
    p = plan(expected_percentage=1.0)
    decision = decide(p, seen(p, percentage=1.0, variants=counts(1000, 200, 99_000, 0)))
    assert (decision.move, decision.to) == (Move.ROLLBACK, 0.0)


def test_a_proven_sample_ratio_mismatch_rolls_back() -> None:
    p = plan(expected_percentage=25.0)
    skewed = counts(4000, 0, 6000, 0)  # 40 % seen at 25 %
    decision = decide(p, seen(p, percentage=25.0, variants=skewed))
    assert decision.move is Move.ROLLBACK
    assert decision.gate is not None and decision.gate.name == "exposure"
    assert "sample ratio mismatch" in decision.reason


def test_a_share_off_but_not_proven_a_mismatch_waits() -> None:
    p = plan(expected_percentage=25.0)
    few = counts(30, 0, 70, 0)  # 30 % of 100 at 25 %: off by 5 points, proves nothing
    decision = decide(p, seen(p, percentage=25.0, variants=few))
    assert (decision.move, decision.to) == (Move.WAIT, 50.0)
    assert "not yet proven a mismatch" in decision.reason


def test_canary_fail_rolls_back_and_marginal_waits() -> None:
    p = plan(expected_percentage=25.0, gates=frozenset({"error_rate", "canary"}))
    failed = decide(p, seen(p, percentage=25.0, canary=Verdict.FAIL))
    assert failed.move is Move.ROLLBACK
    assert failed.gate is not None and failed.gate.name == "canary"
    marginal = decide(p, seen(p, percentage=25.0, canary=Verdict.MARGINAL))
    assert marginal.move is Move.WAIT
    assert "canary marginal" in marginal.reason


def test_missing_data_never_advances_and_pauses_after_n_ticks() -> None:
    p = plan()
    blind = seen(p, fresh=False)
    first = decide(p, blind, pause_after_ticks=3)
    assert (first.move, first.no_data) == (Move.WAIT, True)
    assert "no data" in first.reason
    third = decide(replace(p, ticks_without_data=2), blind, pause_after_ticks=3)
    assert third.move is Move.PAUSE
    assert "no data for 3 ticks" in third.reason


def test_no_evaluations_is_missing_data_not_a_failure() -> None:
    p = plan()
    decision = decide(p, seen(p, variants={}))
    assert (decision.move, decision.no_data) == (Move.WAIT, True)


def test_the_step_above_stop_at_waits_for_a_person() -> None:
    p = plan(expected_percentage=50.0)
    decision = decide(p, seen(p, percentage=50.0))
    assert decision.move is Move.HOLD
    assert "next step 100 % waits for a person" in decision.reason


def test_a_hold_still_rolls_back_on_failure() -> None:
    p = plan(expected_percentage=50.0)
    decision = decide(p, seen(p, percentage=50.0, variants=counts(5000, 500, 5000, 0)))
    assert (decision.move, decision.to) == (Move.ROLLBACK, 25.0)


def test_last_step_holds() -> None:
    p = plan(steps=(1.0, 5.0), expected_percentage=5.0)
    assert decide(p, seen(p)).move is Move.HOLD


def test_outside_allowed_hours_waits() -> None:
    p = plan(allowed_hours=AllowedHours.parse("mon-fri 09-17 Europe/Berlin"))
    saturday = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    decision = decide(p, seen(p, now=saturday))
    assert decision.move is Move.WAIT
    assert "outside the allowed hours (mon-fri 09:00-17:00 Europe/Berlin)" in decision.reason
    inside = decide(p, seen(p, now=NOW))  # Wednesday 11:00 in Berlin
    assert inside.move is Move.ADVANCE


def test_a_person_moving_the_flag_pauses_the_plan_and_names_them() -> None:
    p = plan(expected_percentage=25.0)
    olga = SeenChange("olga", datetime(2026, 12, 2, 9, 55, 3, tzinfo=UTC), "k1", 25.0, 10.0)
    decision = decide(p, seen(p, percentage=10.0, last_change=olga))
    assert decision.move is Move.PAUSE
    assert "changed by olga at 2026-12-02 09:55:03 UTC" in decision.reason
    assert "now rollout 10 %" in decision.reason


def test_a_change_outside_the_dashboard_pauses_too() -> None:
    p = plan(expected_percentage=25.0)
    decision = decide(p, seen(p, percentage=10.0, last_change=None))
    assert decision.move is Move.PAUSE
    assert "outside the dashboard" in decision.reason


def test_the_plans_own_applied_action_is_adopted_not_fought() -> None:
    p = plan(expected_percentage=5.0)
    own = SeenChange("autopilot", NOW, "autopilot-7-3-advance-25", 5.0, 25.0)
    decision = decide(p, seen(p, percentage=25.0, last_change=own))
    assert (decision.move, decision.to) == (Move.RESYNC, 25.0)


def test_another_plans_autopilot_key_is_not_adopted() -> None:
    p = plan(expected_percentage=5.0)
    other = SeenChange("autopilot", NOW, "autopilot-77-3-advance-25", 5.0, 25.0)
    assert decide(p, seen(p, percentage=25.0, last_change=other)).move is Move.PAUSE


def test_paused_and_aborted_plans_do_nothing() -> None:
    for status in (PlanStatus.PAUSED, PlanStatus.ABORTED):
        p = plan(status=status, status_reason="changed by olga")
        decision = decide(p, seen(p, variants=counts(2500, 400, 7500, 0)))
        assert decision.move is Move.NONE
        assert not decision.failing
        assert str(status) in decision.reason


def test_gates_left_out_of_the_plan_do_not_block() -> None:
    p = plan(gates=frozenset({"data_fresh", "error_rate"}))
    decision = decide(p, seen(p, soaked=timedelta(minutes=10)))  # soak 30 min not gated
    assert decision.move is Move.ADVANCE
