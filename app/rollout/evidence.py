"""Gathering what the advance guards look at, from whichever metrics source answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from app.analysis.health import error_ratio
from app.flags.backend import FlagSnapshot
from app.rollout.audit import AuditLog, Outcome
from app.rollout.guards import (
    DependencyStatus,
    GuardInputs,
    GuardPolicy,
    GuardResult,
    VariantCounts,
    evaluate_guards,
)
from queries.source import MetricsSource, first_answer

__all__ = ["gather_guard_inputs", "guard_check", "variant_counts", "variant_counts_by_flag"]

#: reasons decided by the percentage alone: the ones whose shares exposure compares
SPLIT_REASONS = frozenset({"split", "default"})


def guard_check(
    sources: Sequence[MetricsSource],
    audit: AuditLog,
    policy: GuardPolicy,
    now: Callable[[], datetime],
) -> Callable[[FlagSnapshot, str], list[GuardResult]]:
    """A `GuardCheck` for `app.rollout.actions`: measure now, then judge."""

    def check(snapshot: FlagSnapshot, flag: str) -> list[GuardResult]:
        inputs = gather_guard_inputs(sources, audit, snapshot, flag, policy, now())
        return evaluate_guards(inputs, policy)

    return check


@dataclass(frozen=True)
class _Measured:
    """One source's answers to the guards' questions; all None when none answered."""

    source: str = ""
    newest: datetime | None = None
    variants: dict[str, VariantCounts] | None = None
    rates: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    versions: dict[str, str] | None = None


def _measure(
    source: MetricsSource, environment: str, flag_key: str, policy: GuardPolicy, at: datetime
) -> _Measured:
    window = policy.soak_window
    newest = source.newest_sample_time(environment, at)
    counts = source.flag_counts(environment, flag_key, window, at)
    rates = source.evaluation_rates(environment, window, at)
    errors = source.error_rates(environment, window, at)
    versions = source.instance_versions(environment, at)
    return _Measured(
        source=source.name,
        newest=newest,
        variants=variant_counts(counts),
        rates=rates,
        errors=errors,
        versions=dict(zip(versions["instance"], versions["config_version"], strict=True)),
    )


def gather_guard_inputs(
    sources: Sequence[MetricsSource],
    audit: AuditLog,
    snapshot: FlagSnapshot,
    flag_key: str,
    policy: GuardPolicy,
    at: datetime,
) -> GuardInputs:
    """Everything the guards need, from the first source that answers every question;
    a source that fails is named in `notices` and its numbers are not used."""
    environment = snapshot.environment
    flag = snapshot.flag(flag_key)
    notices: list[str] = []
    answer = first_answer(
        sources,
        lambda source: _measure(source, environment, flag_key, policy, at),
        notices,
        "trying the next source.",
    )
    measured = _Measured() if answer is None else answer[1]
    changes = audit.entries(
        flag=flag_key, environment=environment, outcomes=(Outcome.APPLIED,), limit=1
    )
    return GuardInputs(
        now=at,
        configured_percentage=flag.percentage,
        treatment=flag.rollout.variant,
        baseline=flag.default_variant,
        source=measured.source,
        newest_sample=measured.newest,
        variants=measured.variants,
        at_step_since=changes[0].at if changes else None,
        dependencies=_dependencies(
            snapshot, flag.metadata.dependencies, measured.rates, measured.errors
        ),
        instance_versions=measured.versions,
        current_config_version=snapshot.config.loaded_version,
        notices=tuple(notices),
    )


def variant_counts(counts: pd.DataFrame) -> dict[str, VariantCounts]:
    """Per variant of one flag's counts: all evaluations, failed ones (reason `error`),
    split-decided ones."""
    return variant_counts_by_flag(counts.assign(flag="")).get("", {})


def variant_counts_by_flag(counts: pd.DataFrame) -> dict[str, dict[str, VariantCounts]]:
    """`variant_counts` of every flag in `counts` (`frames.VARIANT_COUNT_COLUMNS`), in
    one grouping: per flag one grouping cost seconds at 5,000 flags."""
    if counts.empty:
        return {}
    reasons = counts["reason"].astype(str)
    evaluations = counts["evaluations"].astype(float)
    totals = (
        pd.DataFrame(
            {
                "flag": counts["flag"].astype(str),
                "variant": counts["variant"].astype(str),
                "evaluations": evaluations,
                "errors": evaluations.where(reasons == "error", 0.0),
                "split": evaluations.where(reasons.isin(SPLIT_REASONS), 0.0),
            }
        )
        .groupby(["flag", "variant"], sort=True)
        .sum()
    )
    result: dict[str, dict[str, VariantCounts]] = {}
    for (flag, variant), total, errors, split in zip(
        totals.index.tolist(),
        totals["evaluations"].tolist(),
        totals["errors"].tolist(),
        totals["split"].tolist(),
        strict=True,
    ):
        result.setdefault(flag, {})[variant] = VariantCounts(total, errors, split)
    return result


def _dependencies(
    snapshot: FlagSnapshot,
    keys: Sequence[str],
    rates: pd.DataFrame | None,
    errors: pd.DataFrame | None,
) -> tuple[DependencyStatus, ...]:
    totals: dict[str, float] = {}
    if rates is not None:
        totals = {
            str(k): float(v)
            for k, v in rates.groupby("flag")["evaluations_per_second"].sum().items()
        }
    failed: dict[str, float] = {}
    if errors is not None:
        failed = dict(zip(errors["flag"], errors["errors_per_second"], strict=True))
    statuses = []
    for key in keys:
        total = float(totals.get(key, 0.0))
        ratio = error_ratio(total, float(failed.get(key, 0.0)))
        success = None if ratio is None else 1.0 - ratio
        statuses.append(DependencyStatus(key, snapshot.config.flags[key].percentage, success))
    return tuple(statuses)
