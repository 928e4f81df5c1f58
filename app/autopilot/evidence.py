"""The evidence of one tick, asked in bulk: per environment, the same few questions
whatever the number of planned flags (`app.rollout.evidence.measure_environment`: four
metric queries, three where the emitter counts failures only as reasons, and the
canary's three when a plan gates on it) over the slots since the oldest planned step
began (`tick_start`), then judged per plan with the plan's own soak, on the guard
inputs an advance builds (`guard_inputs`): since that plan's step began."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from app.analysis.canary import Verdict
from app.autopilot.decide import PlanEvidence, SeenChange
from app.autopilot.model import RolloutPlan
from app.flags.backend import FlagSnapshot
from app.guardrails import Guardrail
from app.rollout.evidence import (
    Measured,
    gates_pending,
    guard_inputs,
    judged_start,
    measure_environment,
)
from app.rollout.guards import GuardName, GuardPolicy, evaluate_guards
from queries.canary import CanaryQueries
from queries.source import MetricsSource, counting_queries, first_answer

__all__ = ["EnvironmentEvidence", "gather_environment", "plan_evidence", "tick_start"]


@dataclass(frozen=True)
class EnvironmentEvidence:
    """What the metrics say about every flag of one environment over the window."""

    environment: str
    at: datetime
    window: timedelta
    measured: Measured = field(default_factory=Measured)
    notices: tuple[str, ...] = ()
    canary: Verdict | None = None
    canary_detail: str = ""
    queries: int = 0


def tick_start(steps_began: Sequence[datetime | None], at: datetime, policy: GuardPolicy) -> float:
    """Where one tick's slots begin (epoch seconds, on the grid): the earliest window any
    of the planned flags is judged on (`judged_start`), and the soak window the
    dependencies are judged on."""
    starts = [judged_start(began, at, policy)[0] for began in steps_began]
    slot = policy.slots.slot
    fallback = (at.timestamp() - policy.soak_window.total_seconds()) // slot * slot
    return min([*starts, fallback])


def gather_environment(
    sources: Sequence[MetricsSource],
    environment: str,
    window: timedelta,
    at: datetime,
    canary_sources: Sequence[CanaryQueries] | None = None,
    *,
    start: float,
    slot: float,
    guardrails: Sequence[Guardrail] = (),
) -> EnvironmentEvidence:
    """The questions of `measure_environment` from `start` (`tick_start`) to the first
    metrics source that answers them all, and the canary verdict over `window` when
    `canary_sources` is given. Never raises: what did not answer is in `notices`."""
    notices: list[str] = []
    with counting_queries() as sent:
        answer = first_answer(
            sources,
            lambda source: measure_environment(source, environment, start, at, slot, guardrails),
            notices,
            "trying the next source.",
        )
        evidence = EnvironmentEvidence(environment, at, window, notices=tuple(notices))
        if answer is not None:
            evidence = replace(evidence, measured=answer[1])
        if canary_sources is not None:
            from app.analysis.canary_analysis import load_canary

            analysis = load_canary(canary_sources, environment, window, at)
            words = "; ".join(
                f"{m.name} {m.verdict}" for m in analysis.report.metrics
            ) or "; ".join(analysis.notices)
            evidence = replace(evidence, canary=analysis.report.verdict, canary_detail=words)
    return replace(evidence, queries=sent.count)


def plan_evidence(
    plan: RolloutPlan,
    snapshot: FlagSnapshot,
    seen: EnvironmentEvidence,
    policy: GuardPolicy,
    last_change: SeenChange | None,
) -> PlanEvidence:
    """The six guards of `plan`'s flag judged on the environment's evidence since its
    step began, with the plan's soak, ready for `decide`."""
    flag = snapshot.flag(plan.flag)
    at_step_since = last_change.at if last_change is not None else None
    judged = replace(
        policy,
        min_soak=plan.soak,
        false_action_budget=plan.budget or policy.false_action_budget,
    )
    inputs = guard_inputs(
        seen.measured,
        snapshot,
        plan.flag,
        judged,
        at=seen.at,
        at_step_since=at_step_since,
        notices=seen.notices,
    )
    pending = at_step_since is not None and gates_pending(at_step_since, seen.at, judged)
    return PlanEvidence(
        first_slot_pending=pending and seen.measured.slots is not None,
        now=seen.at,
        state=flag.state,
        percentage=flag.percentage,
        guards=evaluate_guards(inputs, judged),
        variants=inputs.variants,
        errors=inputs.errors,
        treatment=flag.rollout.variant,
        baseline=flag.default_variant,
        window=seen.window,
        at_step_since=at_step_since,
        last_change=last_change,
        canary=seen.canary if GuardName.CANARY in plan.gates else None,
        canary_detail=seen.canary_detail,
    )
