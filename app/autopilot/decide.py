"""What the autopilot does about one plan at one tick: a pure rule.

`decide` looks at the plan, where the flag is, the guard results measured for it and
the canary verdict, and says one thing: advance, roll back, kill, pause, wait or hold,
with the reason in words. It fails closed: missing data never advances; only a gate
that failed *on data* triggers the plan's failure action, at once: a guard whose
always-valid e-value proves its limit broken since the step began
(`GuardResult.on_data`: an error rate above its limit, a treatment failing more than its
control, a sample ratio mismatch), or a canary FAIL. Because the evidence stays valid
however often it is looked at, no second tick is needed to confirm it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from app.analysis.canary import Verdict
from app.analysis.failures import FlagErrors
from app.autopilot.model import AUTOPILOT_ACTOR, OnFailure, PlanStatus, RolloutPlan
from app.flags.model import FlagState
from app.recorded import Unrecognised
from app.rollout.guards import GuardName, GuardResult, VariantCounts

__all__ = [
    "Decision",
    "Move",
    "PlanEvidence",
    "SeenChange",
    "decide",
]


class Move(StrEnum):
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    KILL = "kill"
    PAUSE = "pause"
    WAIT = "wait"  # a gate is not met yet: look again next tick
    HOLD = "hold"  # nothing left the autopilot may do alone: keeps watching for failures
    RESYNC = "resync"  # the flag is where this plan's own last action left it
    NONE = "none"  # the plan is not active
    DRY_RUN = "dry_run"  # a dry-run plan recorded what it would have done


@dataclass(frozen=True)
class SeenChange:
    """The newest applied change of the flag, as the audit log has it."""

    actor: str
    at: datetime
    idempotency_key: str = ""
    from_percentage: float | None = None
    to_percentage: float | None = None


@dataclass(frozen=True, kw_only=True)
class PlanEvidence:
    """What one tick saw of one planned flag. `guards` are the six advance guards judged
    with the plan's soak (`evaluate_guards`); `canary` is the canary verdict when the plan
    gates on it, with its words."""

    now: datetime
    state: FlagState
    percentage: float
    guards: Sequence[GuardResult]
    variants: Mapping[str, VariantCounts] | None
    treatment: str
    baseline: str
    window: timedelta
    at_step_since: datetime | None = None
    last_change: SeenChange | None = None
    canary: Verdict | None = None
    canary_detail: str = ""
    #: the flag's failed evaluations over the window, as the guards judged them (None:
    #: no error counter answered, `variants`' reason-`error` evaluations are the failures)
    errors: FlagErrors | None = None
    #: the step is younger than its first whole slot: nothing to judge yet, and that is
    #: no missing data
    first_slot_pending: bool = False


@dataclass(frozen=True)
class Decision:
    move: Move
    reason: str
    to: float | None = None
    gate: GuardResult | None = None  # the gate that failed on data
    no_data: bool = False
    #: a gate is failing on data now (starts or continues the plan's `failing_since`)
    failing: bool = False


def decide(plan: RolloutPlan, seen: PlanEvidence, *, pause_after_ticks: int = 10) -> Decision:
    """The plan's next move (see the module's docstring); `pause_after_ticks` ticks in a
    row without data pause the plan. `failing` is set from the first tick a gated error
    rate fails on numbers, significant yet or not: where the time to mitigate starts."""
    decision = _with_dry_runs(plan, seen, _decide(plan, seen, pause_after_ticks))
    errors = next((g for g in seen.guards if g.name == GuardName.ERROR_RATE), None)
    suspect = (
        GuardName.ERROR_RATE in plan.gates
        and errors is not None
        and not errors.passed
        and errors.value is not None
    ) or (GuardName.CANARY in plan.gates and seen.canary is Verdict.FAIL)
    suspect = suspect or (decision.gate is not None and decision.move is not Move.NONE)
    if suspect and not decision.failing and plan.is_active:
        return replace(decision, failing=True)
    return decision


def _decide(plan: RolloutPlan, seen: PlanEvidence, pause_after_ticks: int) -> Decision:
    if plan.status is not PlanStatus.ACTIVE:
        return Decision(Move.NONE, f"plan {plan.status}" + _because(plan.status_reason))
    moved = _moved_by_someone(plan, seen)
    if moved is not None:
        return moved
    failed = _failed_on_data(plan, seen)
    if failed is not None:
        return _on_failure(plan, seen, failed)
    gated = [g for g in seen.guards if g.name in plan.gates]
    missing = _missing_data({g.name: g for g in gated})
    if missing is not None and seen.first_slot_pending:
        return Decision(Move.WAIT, f"waited: {missing}")
    if missing is not None:
        if plan.ticks_without_data + 1 >= pause_after_ticks:
            return Decision(
                Move.PAUSE,
                f"paused: no data for {plan.ticks_without_data + 1} ticks ({missing})",
                no_data=True,
            )
        return Decision(Move.WAIT, f"waited: no data ({missing})", no_data=True)
    step = plan.next_step(seen.percentage) if seen.state is not FlagState.ENABLED else None
    if step is None:
        return Decision(
            Move.HOLD, f"at {seen.percentage:g} %, the plan's last step: watching for failures"
        )
    if step > plan.stop_at:
        return Decision(
            Move.HOLD,
            f"next step {step:g} % waits for a person (the autopilot goes alone up to "
            f"{plan.stop_at:g} %): watching for failures",
        )
    waiting = [_wait_words(g) for g in gated if not g.passed]
    if GuardName.CANARY in plan.gates and seen.canary is not Verdict.PASS:
        verdict = seen.canary or Verdict.INCONCLUSIVE
        waiting.append(f"canary {verdict}" + _because(seen.canary_detail))
    if waiting:
        return Decision(Move.WAIT, "waited: " + "; ".join(waiting), to=step)
    if plan.allowed_hours is not None and not plan.allowed_hours.allows(seen.now):
        return Decision(
            Move.WAIT, f"waited: outside the allowed hours ({plan.allowed_hours.text})", to=step
        )
    return Decision(
        Move.ADVANCE,
        f"advance {seen.percentage:g} % → {step:g} %: every gate passed, soaked {_soaked(seen)}",
        to=step,
    )


def _because(text: str) -> str:
    return f": {text}" if text else ""


def _moved_by_someone(plan: RolloutPlan, seen: PlanEvidence) -> Decision | None:
    """PAUSE naming who moved the flag away from where the plan left it; RESYNC when the
    plan's own action did (its record was applied but the plan not updated)."""
    if seen.state is plan.expected_state and seen.percentage == plan.expected_percentage:
        return None
    change = seen.last_change
    own = f"autopilot-{plan.id}-"
    if change is not None and change.idempotency_key.startswith(own):
        return Decision(
            Move.RESYNC, f"the autopilot's own change to {seen.percentage:g} %", seen.percentage
        )
    where = f"{seen.state} {seen.percentage:g} %"
    if change is None or change.actor == AUTOPILOT_ACTOR:
        who = "outside the dashboard"
    else:
        who = f"{change.actor} at {change.at:%Y-%m-%d %H:%M:%S} UTC"
    return Decision(
        Move.PAUSE,
        f"paused: changed by {who} (now {where}, the plan left it at "
        f"{plan.expected_state} {plan.expected_percentage:g} %); a person resumes it",
    )


def _failed_on_data(plan: RolloutPlan, seen: PlanEvidence) -> GuardResult | None:
    """The first of the plan's gates whose failure the data proves (`on_data`), or the
    canary's FAIL when the plan gates on it."""
    for guard in seen.guards:
        if guard.name in plan.gates and not guard.passed and guard.on_data:
            return guard
    if GuardName.CANARY in plan.gates and seen.canary is Verdict.FAIL:
        return GuardResult(
            GuardName.CANARY, False, str(Verdict.FAIL), str(Verdict.PASS), seen.canary_detail
        )
    return None


def _on_failure(plan: RolloutPlan, seen: PlanEvidence, gate: GuardResult) -> Decision:
    failed = f"{gate.label} failed: {gate.detail}" if gate.detail else f"{gate.label} failed"
    lowest = seen.state is FlagState.DISABLED or seen.percentage <= 0
    if plan.on_failure is OnFailure.PAUSE or lowest:
        return Decision(Move.PAUSE, f"paused: {failed}", gate=gate, failing=True)
    if plan.on_failure is OnFailure.KILL:
        return Decision(
            Move.KILL, f"kill {seen.percentage:g} % → 0 %: {failed}", 0.0, gate, failing=True
        )
    back = plan.previous_step(seen.percentage)
    return Decision(
        Move.ROLLBACK,
        f"rollback {seen.percentage:g} % → {back:g} %: {failed}",
        back,
        gate,
        failing=True,
    )


def _missing_data(gates: Mapping[GuardName | Unrecognised, GuardResult]) -> str | None:
    """Why the gated guards cannot be judged (no fresh data, no evaluations), or None."""
    fresh = gates.get(GuardName.DATA_FRESH)
    if fresh is not None and not fresh.passed:
        return fresh.detail
    errors = gates.get(GuardName.ERROR_RATE)
    if errors is not None and errors.value is None:
        return errors.detail
    return None


def _wait_words(guard: GuardResult) -> str:
    """'soak 12 of 30 min', 'error_rate: 1.40 % of 900 evaluations failed: above 1 %,
    not yet proven', …"""
    if guard.name == GuardName.SOAK_TIME and isinstance(guard.value, int | float):
        minimum = float(guard.threshold) if isinstance(guard.threshold, int | float) else 0.0
        return f"soak {_minutes(float(guard.value))} of {_minutes(minimum)}"
    return f"{guard.label}: {guard.detail}"


def _with_dry_runs(plan: RolloutPlan, seen: PlanEvidence, decision: Decision) -> Decision:
    """A decision that takes no action, with what each dry-run guardrail proven worse
    would have done ('dry run: guardrail http_5xx would have rolled back 25 % → 10 %')."""
    if decision.move in (Move.ADVANCE, Move.ROLLBACK, Move.KILL) or not plan.is_active:
        return decision
    if GuardName.GUARDRAIL not in plan.gates:
        return decision
    would = [g for g in seen.guards if g.name == GuardName.GUARDRAIL and g.would_act]
    if not would:
        return decision
    acted = _on_failure(plan, seen, replace(would[0], dry_run=False))
    verb = {Move.ROLLBACK: "rolled back", Move.KILL: "killed", Move.PAUSE: "paused"}
    done = verb.get(acted.move, str(acted.move))
    if acted.to is not None and acted.move is not Move.PAUSE:
        done += f" {seen.percentage:g} % → {acted.to:g} %"
    names = ", ".join(g.label for g in would)
    return replace(decision, reason=f"{decision.reason}; dry run: {names} would have {done}")


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _soaked(seen: PlanEvidence) -> str:
    if seen.at_step_since is None:
        return "since before the history began"
    return _minutes((seen.now - seen.at_step_since).total_seconds())
