"""The backtest's replay on synthetic slots: the live rule at every tick, on the slots that
had ended by then, judged with the share the flag really had; it stops at the first
rollback, kill or pause."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock

import numpy as np
import pytest

from app.audit import AuditEntry, Outcome, RecordedAction
from app.autopilot.backtest import (
    RealChange,
    TickDecision,
    _Lookahead,
    backtest_plan,
    backtest_ticks,
    decision_runs,
    history_start,
    real_changes,
    replay,
)
from app.autopilot.decide import Decision, Move
from app.autopilot.model import OnFailure, PlanInvalid, PlanOptions, RolloutPlan
from app.evidence.gates import FlagSlots, VariantSlots
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagConfig, FlagState
from app.guardrails import Guardrail
from app.rollout.evidence import Measured, RailSlots
from app.rollout.guards import GuardName, GuardPolicy
from queries.names import ErrorsIn

FLAG = "checkout"
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SLOT = 30.0
POLICY = GuardPolicy()
GATES = frozenset(
    {
        GuardName.DATA_FRESH,
        GuardName.ERROR_RATE,
        GuardName.SOAK_TIME,
        GuardName.DEPENDENCIES,
        GuardName.EXPOSURE,
    }
)

#: per slot end (epoch seconds): (share on the treatment, its error rate, the control's)
Traffic = Callable[[float], tuple[float, float, float]]


def snapshot(percentage: float = 10.0) -> FlagSnapshot:
    config = FlagConfig(
        version="1",
        environment="production",
        flags={FLAG: {"state": "rollout", "rollout": {"percentage": percentage}}},  # type: ignore[dict-item]
    )
    return FlagSnapshot("production", config)


def measured(
    hours: float, traffic: Traffic, *, per_second: float = 20.0, quiet_after: float | None = None
) -> Measured:
    """The flag's counts per slot from what the first tick judges to `hours` after START:
    `per_second` evaluations, split and failing as `traffic` says (exact expectations,
    no noise); none after `quiet_after` hours."""
    start = history_start(START, POLICY)
    end = START.timestamp() + hours * 3600
    ends = start + SLOT * np.arange(1, round((end - start) / SLOT) + 1)
    columns = np.array([traffic(e) for e in ends])
    total = np.full(len(ends), per_second * SLOT)
    if quiet_after is not None:
        total[ends > START.timestamp() + quiet_after * 3600] = 0.0
    on = total * columns[:, 0]
    off = total - on
    on_errors, off_errors = on * columns[:, 1], off * columns[:, 2]
    slots = FlagSlots(
        ends,
        {"on": VariantSlots(on, on_errors, on), "off": VariantSlots(off, off_errors, off)},
        on_errors + off_errors,
    )
    return Measured(
        source="synthetic",
        slots={FLAG: slots},
        errors_in=ErrorsIn.BOTH,
        versions={},
        start=start,
        end=end,
        slot=SLOT,
    )


def healthy(share: float = 0.10) -> Traffic:
    return lambda _end: (share, 0.005, 0.005)


def a_plan(**options: object) -> RolloutPlan:
    chosen: dict[str, object] = {
        "steps": (10.0, 25.0, 50.0, 100.0),
        "soak": timedelta(minutes=30),
        "gates": GATES,
    }
    typed = PlanOptions(**(chosen | options))  # type: ignore[arg-type]
    assert typed.gates is not None
    return backtest_plan(snapshot(), FLAG, typed, typed.gates)


def run(
    plan: RolloutPlan,
    data: Measured,
    hours: float,
    changes: tuple[RealChange, ...] = (),
    config: FlagSnapshot | None = None,
) -> tuple[list[TickDecision], str]:
    ticks = backtest_ticks(START, START + timedelta(hours=hours), timedelta(seconds=30))
    return replay(plan, config or snapshot(), data, changes, ticks, POLICY)


def moves_at(decisions: list[TickDecision], move: Move) -> list[datetime]:
    return [d.at for d in decisions if d.move is move]


def test_a_healthy_flag_climbs_to_the_highest_step_taken_alone_then_holds() -> None:
    decisions, stopped = run(a_plan(), measured(3, healthy()), 3)
    assert len(decisions) == 3 * 120 + 1  # every 30 s tick from START to the end
    assert decisions[0].move is Move.WAIT  # the step's first slot has not ended
    advances = [d for d in decisions if d.move is Move.ADVANCE]
    assert [(d.at - START, d.percentage, d.decision.to) for d in advances] == [
        (timedelta(minutes=30), 10.0, 25.0),
        (timedelta(minutes=60), 25.0, 50.0),
    ]
    assert {d.move for d in decisions} == {Move.WAIT, Move.ADVANCE, Move.HOLD}
    held = [d for d in decisions if d.move is Move.HOLD]
    # at 50 % from its first judged tick: the next step, 100 %, waits for a person
    assert held[0].at == START + timedelta(minutes=60, seconds=30)
    assert "next step 100 % waits for a person" in held[0].decision.reason
    assert stopped.startswith("ran to 2026-12-01 11:00:00 UTC")


def test_after_a_simulated_advance_the_evidence_is_judged_with_the_real_share() -> None:
    """The traffic stays at 10 %: judged against the simulated 25 % it would be a sample
    ratio mismatch; judged against the real 10 % it is none."""
    decisions, _ = run(a_plan(), measured(2, healthy(0.10)), 2)
    later = [d for d in decisions if d.at > START + timedelta(minutes=31)]
    assert later and all(d.real_percentage == 10.0 for d in later)
    assert {d.percentage for d in later} == {25.0, 50.0}
    assert not any(d.decision.failing for d in decisions)
    # the simulated step began at the advance: its soak restarted there
    after = next(d for d in decisions if d.at == START + timedelta(minutes=45))
    assert after.step_since == START + timedelta(minutes=30)
    assert "soak 15 min of 30 min" in after.decision.reason


def test_a_regression_at_a_known_time_is_rolled_back_soon_after_and_the_replay_stops() -> None:
    onset = START.timestamp() + 2 * 3600

    def regressing(end: float) -> tuple[float, float, float]:
        return (0.25, 0.20 if end > onset else 0.005, 0.005)

    plan = a_plan(soak=timedelta(hours=12))  # never advances: the rollback is the first action
    decisions, stopped = run(plan, measured(4, regressing), 4, config=snapshot(25.0))
    last = decisions[-1]
    assert last.move is Move.ROLLBACK and last.decision.to == 10.0
    assert last.decision.gate is not None and last.decision.gate.name == GuardName.ERROR_RATE
    delay = last.at.timestamp() - onset
    assert 0 < delay <= 120  # a gross failure: within a few ticks
    assert not any(d.decision.failing for d in decisions if d.at.timestamp() <= onset)
    assert stopped.startswith("stopped at") and "rollback" in stopped


def test_kill_on_failure_kills_and_stops() -> None:
    def failing(_end: float) -> tuple[float, float, float]:
        return (0.10, 0.30, 0.005)

    decisions, _ = run(a_plan(on_failure=OnFailure.KILL), measured(1, failing), 1)
    assert decisions[-1].move is Move.KILL and decisions[-1].decision.to == 0.0
    assert decisions[-1].at <= START + timedelta(minutes=2)


def test_a_real_change_moves_the_step_start_and_the_judged_share() -> None:
    moved = START + timedelta(hours=1)

    def split(end: float) -> tuple[float, float, float]:
        return (0.25 if end > moved.timestamp() else 0.10, 0.005, 0.005)

    change = RealChange(moved, "olga", FlagState.ROLLOUT, 10.0, FlagState.ROLLOUT, 25.0)
    plan = a_plan(steps=(10.0, 50.0, 100.0), soak=timedelta(hours=2))
    decisions, _ = run(plan, measured(2, split), 2, (change,), config=snapshot(25.0))
    before = next(d for d in decisions if d.at == moved - timedelta(minutes=1))
    after = next(d for d in decisions if d.at == moved + timedelta(minutes=10))
    assert (before.real_percentage, before.step_since) == (10.0, START)
    assert (after.real_percentage, after.step_since) == (25.0, moved)
    assert after.percentage == 10.0  # the simulated plan is not paused by a person's change
    assert "soak 10 min of 120 min" in after.decision.reason
    assert not any(d.decision.failing for d in decisions)  # no sample ratio mismatch


def test_no_data_waits_then_pauses_and_the_replay_stops() -> None:
    decisions, stopped = run(a_plan(), measured(1, healthy(), quiet_after=0.5), 1)
    assert decisions[-1].move is Move.PAUSE
    assert "paused: no data for 10 ticks" in decisions[-1].decision.reason
    quiet = START + timedelta(minutes=30)
    waits = [d for d in decisions if d.decision.no_data]
    assert len(waits) == 10 and all(d.at > quiet for d in waits)
    assert "stopped at" in stopped


def test_a_tick_never_sees_slots_after_it() -> None:
    """Counts that arrive only later (a failure after the last tick) change nothing."""
    end = START.timestamp() + 3600

    def late(at: float) -> tuple[float, float, float]:
        return (0.10, 0.5 if at > end else 0.005, 0.005)

    data = measured(2, late)  # an hour more than the ticks replay
    decisions, _ = run(a_plan(), data, 1)
    assert not any(d.decision.failing for d in decisions)
    assert decisions == run(a_plan(), measured(1, late), 1)[0]


def test_the_flag_starts_where_the_audit_log_has_it_at_the_start() -> None:
    later = RealChange(
        START + timedelta(hours=5), "olga", FlagState.ROLLOUT, 25.0, FlagState.ROLLOUT, 50.0
    )
    decisions, _ = run(a_plan(), measured(1, healthy(0.25)), 1, (later,), snapshot(50.0))
    assert decisions[0].percentage == 25.0 and decisions[0].real_percentage == 25.0


def test_real_changes_keeps_applied_ones_oldest_first() -> None:
    def entry(minutes: int, outcome: Outcome, to: float) -> AuditEntry:
        return AuditEntry(
            at=START + timedelta(minutes=minutes),
            actor="olga",
            action=RecordedAction.ADVANCE,
            flag=FLAG,
            environment="production",
            from_state=FlagState.ROLLOUT,
            from_percentage=10.0,
            to_state=None,
            to_percentage=to,
            reason="r",
            outcome=outcome,
        )

    found = real_changes(
        [entry(9, Outcome.APPLIED, 0), entry(3, Outcome.APPLIED, 25), entry(5, Outcome.REFUSED, 50)]
    )
    assert [(c.at.minute, c.to_state, c.to_percentage) for c in found] == [
        (3, FlagState.ROLLOUT, 25.0),
        (9, FlagState.DISABLED, 0.0),
    ]


def test_a_backtest_plan_is_checked_as_plan_set_checks_it() -> None:
    with pytest.raises(PlanInvalid) as refused:
        backtest_plan(
            snapshot(),
            "nope",
            PlanOptions(steps=(50.0, 10.0), soak=timedelta(minutes=5)),
            frozenset({GuardName.ERROR_RATE}),
        )
    problems = " | ".join(refused.value.problems)
    assert "steps must rise" in problems
    assert "are always gates" in problems
    assert "unknown flag 'nope'" in problems


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (START, START, "must end after it starts"),
        (START, START + timedelta(days=8), "at most 7 days"),
    ],
)
def test_a_span_that_cannot_be_replayed_is_refused(
    start: datetime, end: datetime, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        backtest_ticks(start, end, timedelta(seconds=30))


def test_runs_group_waits_and_keep_every_action_apart() -> None:
    def tick(minutes: int, move: Move, percentage: float, reason: str) -> TickDecision:
        at = START + timedelta(minutes=minutes)
        return TickDecision(at, Decision(move, reason), percentage, 10.0, START)

    runs = decision_runs(
        [
            tick(0, Move.WAIT, 10, "waited: soak 0 s of 30 min"),
            tick(1, Move.WAIT, 10, "waited: soak 60 s of 30 min"),
            tick(2, Move.ADVANCE, 10, "advance 10 % → 25 %"),
            tick(3, Move.WAIT, 25, "waited: soak 60 s of 30 min"),
            tick(4, Move.ROLLBACK, 25, "rollback 25 % → 10 %"),
        ]
    )
    assert [(r.last.move, r.ticks) for r in runs] == [
        (Move.WAIT, 2),
        (Move.ADVANCE, 1),
        (Move.WAIT, 1),
        (Move.ROLLBACK, 1),
    ]
    assert runs[0].words == (
        "2026-12-01 08:00:00 → 08:01:00 UTC wait ×2 at 10 %: waited: soak 60 s of 30 min"
    )


def test_searching_the_next_ticks_intervals_at_once_changes_no_decision() -> None:
    """The look-ahead only saves time: without it every decision, words included, is the
    same (a simulated advance and a rollback with its interval in its words)."""
    onset = START.timestamp() + 2 * 3600

    def regressing(end: float) -> tuple[float, float, float]:
        return (0.25, 0.03 if end > onset else 0.005, 0.005)

    data = measured(4, regressing)
    plan = a_plan(steps=(10.0, 25.0, 50.0, 100.0), soak=timedelta(minutes=30))
    ahead = run(plan, data, 4, config=snapshot(25.0))
    with mock.patch.object(_Lookahead, "learn", lambda *_args, **_kwargs: None):
        alone = run(plan, data, 4, config=snapshot(25.0))
    assert ahead == alone
    assert [d.move for d in ahead[0] if d.move is not Move.WAIT][:2] == [Move.ADVANCE, Move.HOLD]
    assert ahead[0][-1].move is Move.ROLLBACK
    assert "always-valid interval" in ahead[0][-1].decision.reason


def test_a_guardrail_that_regresses_rolls_back_and_no_tick_sees_its_later_slots() -> None:
    """The service's own HTTP 5xx per variant: clean until an hour in, then 8 % on the
    treatment; judged on the guardrail's slots up to each tick only."""
    rail = Guardrail("http_5xx", "bad", "total", "feature_flag_key", "variant", limit=0.01)
    policy = replace(POLICY, guardrails=(rail,))
    onset = START.timestamp() + 3600
    data = measured(3, healthy(0.25))
    assert data.slots is not None
    ends = data.slots[FLAG].ends
    requests = np.full(len(ends), 300.0)
    treated_bad = np.where(ends > onset, 0.08, 0.002) * requests
    data = replace(
        data,
        guardrails={
            "http_5xx": RailSlots(
                ends,
                {FLAG: {"on": (treated_bad, requests), "off": (0.002 * requests, requests)}},
            )
        },
    )
    plan = a_plan(soak=timedelta(hours=12), gates=GATES | {GuardName.GUARDRAIL})
    ticks = backtest_ticks(START, START + timedelta(hours=3), timedelta(seconds=30))
    decisions, _ = replay(plan, snapshot(25.0), data, (), ticks, policy)
    last = decisions[-1]
    assert last.move is Move.ROLLBACK
    assert "http_5xx" in last.decision.reason
    assert 0 < last.at.timestamp() - onset <= 180
    assert not any(d.decision.failing for d in decisions if d.at.timestamp() <= onset)
