"""The evidence of one tick, asked in bulk: per environment, the same few questions
whatever the number of planned flags (three metric queries, and the canary's three when
a plan gates on it), then judged per plan with the plan's own soak."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.analysis.canary import Verdict
from app.analysis.health import error_ratio
from app.autopilot.decide import PlanEvidence, SeenChange
from app.autopilot.model import RolloutPlan
from app.flags.backend import FlagSnapshot
from app.rollout.evidence import unavailable_evidence, variant_counts_by_flag
from app.rollout.guards import (
    DependencyStatus,
    GuardInputs,
    GuardName,
    GuardPolicy,
    VariantCounts,
    evaluate_guards,
)
from queries.canary import CanaryQueries
from queries.source import MetricsSource, counting_queries, first_answer

__all__ = ["EnvironmentEvidence", "gather_environment", "plan_evidence"]


@dataclass(frozen=True)
class EnvironmentEvidence:
    """What the metrics say about every flag of one environment over the window."""

    environment: str
    at: datetime
    window: timedelta
    source: str = ""
    newest: datetime | None = None
    counts: Mapping[str, Mapping[str, VariantCounts]] | None = None
    versions: Mapping[str, str] | None = None
    unavailable: frozenset[str] = frozenset()
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
    """Three questions to the first metrics source that answers them all (newest sample,
    counts by flag, variant and reason, instance config versions), and the canary verdict
    when `canary_sources` is given. Never raises: what did not answer is in `notices`."""
    notices: list[str] = []
    with counting_queries() as sent:

        def ask(
            source: MetricsSource,
        ) -> tuple[datetime | None, dict[str, dict[str, VariantCounts]], dict[str, str] | None]:
            newest = source.newest_sample_time(environment, at)
            counts = variant_counts_by_flag(source.variant_counts(environment, window, at))
            if "config_version" in unavailable_evidence(source):
                return newest, counts, None
            frame = source.instance_versions(environment, at)
            return (
                newest,
                counts,
                dict(zip(frame["instance"], frame["config_version"], strict=True)),
            )

        answer = first_answer(sources, ask, notices, "trying the next source.")
        evidence = EnvironmentEvidence(environment, at, window, notices=tuple(notices))
        if answer is not None:
            source, (newest, counts, versions) = answer
            evidence = replace(
                evidence,
                source=source.name,
                newest=newest,
                counts=counts,
                versions=versions,
                unavailable=unavailable_evidence(source),
            )
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
    counts = seen.counts or {}
    variants = dict(counts.get(plan.flag, {})) if seen.counts is not None else None
    at_step_since = last_change.at if last_change is not None else None
    inputs = GuardInputs(
        now=seen.at,
        configured_percentage=flag.percentage,
        treatment=flag.rollout.variant,
        baseline=flag.default_variant,
        source=seen.source,
        newest_sample=seen.newest,
        variants=variants,
        at_step_since=at_step_since,
        dependencies=tuple(
            _dependency(snapshot, key, counts) for key in flag.metadata.dependencies
        ),
        instance_versions=seen.versions,
        current_config_version=snapshot.config.loaded_version,
        notices=seen.notices,
        unavailable=seen.unavailable,
    )
    judged = replace(policy, min_soak=plan.soak, soak_window=seen.window)
    return PlanEvidence(
        now=seen.at,
        state=flag.state,
        percentage=flag.percentage,
        guards=evaluate_guards(inputs, judged),
        variants=variants,
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


def _dependency(
    snapshot: FlagSnapshot, key: str, counts: Mapping[str, Mapping[str, VariantCounts]]
) -> DependencyStatus:
    variants = counts.get(key, {})
    ratio = error_ratio(
        sum(v.evaluations for v in variants.values()), sum(v.errors for v in variants.values())
    )
    percentage = snapshot.config.flags[key].percentage if key in snapshot.config.flags else 0.0
    return DependencyStatus(key, percentage, None if ratio is None else 1.0 - ratio)
