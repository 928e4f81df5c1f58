"""The evidence of one tick, asked in bulk: per environment, the same few questions
whatever the number of planned flags (`app.rollout.evidence.measure_environment`: four
metric queries, three where the emitter counts failures only as reasons, and the
canary's three when a plan gates on it), then judged per plan with the plan's own soak,
on the guard inputs an advance builds (`guard_inputs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from app.analysis.canary import Verdict
from app.autopilot.decide import PlanEvidence, SeenChange
from app.autopilot.model import RolloutPlan
from app.flags.backend import FlagSnapshot
from app.rollout.evidence import Measured, guard_inputs, measure_environment
from app.rollout.guards import GuardName, GuardPolicy, evaluate_guards
from queries.canary import CanaryQueries
from queries.source import MetricsSource, counting_queries, first_answer

__all__ = ["EnvironmentEvidence", "gather_environment", "plan_evidence"]


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


def gather_environment(
    sources: Sequence[MetricsSource],
    environment: str,
    window: timedelta,
    at: datetime,
    canary_sources: Sequence[CanaryQueries] | None = None,
) -> EnvironmentEvidence:
    """The questions of `measure_environment` to the first metrics source that answers
    them all, and the canary verdict when `canary_sources` is given. Never raises: what
    did not answer is in `notices`."""
    notices: list[str] = []
    with counting_queries() as sent:
        answer = first_answer(
            sources,
            lambda source: measure_environment(source, environment, window, at),
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
    """The six guards of `plan`'s flag judged on the environment's evidence with the
    plan's soak (and the tick's window), ready for `decide`."""
    flag = snapshot.flag(plan.flag)
    at_step_since = last_change.at if last_change is not None else None
    inputs = guard_inputs(
        seen.measured,
        snapshot,
        plan.flag,
        at=seen.at,
        at_step_since=at_step_since,
        notices=seen.notices,
    )
    judged = replace(policy, min_soak=plan.soak, soak_window=seen.window)
    return PlanEvidence(
        now=seen.at,
        state=flag.state,
        percentage=flag.percentage,
        guards=evaluate_guards(inputs, judged),
        variants=inputs.variants,
        errors=inputs.errors,
        treatment=flag.rollout.variant,
        baseline=flag.default_variant,
        window=seen.window,
        significance=policy.significance,
        srm_p_value=policy.srm_p_value,
        at_step_since=at_step_since,
        last_change=last_change,
        canary=seen.canary if GuardName.CANARY in plan.gates else None,
        canary_detail=seen.canary_detail,
    )
