"""Gathering what the advance guards look at, from whichever metrics source answers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from app.analysis.failures import is_error_reason
from app.analysis.health import error_ratio
from app.audit import AuditLog, Outcome
from app.flags.backend import FlagSnapshot
from app.rollout.guards import (
    DependencyStatus,
    GuardInputs,
    GuardPolicy,
    GuardResult,
    VariantCounts,
    evaluate_guards,
)
from queries.source import MetricsSource, first_answer

if TYPE_CHECKING:  # frames arrive from the sources; this module never builds one
    import pandas as pd

__all__ = [
    "gather_guard_inputs",
    "guard_check",
    "unavailable_evidence",
    "variant_counts",
    "variant_counts_by_flag",
]

#: reasons decided by the percentage alone: the ones whose shares exposure compares
SPLIT_REASONS = frozenset({"split", "default"})


def guard_check(
    sources: Sequence[MetricsSource],
    audit: AuditLog,
    policy: GuardPolicy,
    now: Callable[[], datetime],
) -> Callable[[FlagSnapshot, str], list[GuardResult]]:
    """A `GuardCheck` for `app.rollout.planning`: measure now, then judge."""

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
    unavailable: frozenset[str] = frozenset()


def _measure(
    source: MetricsSource, environment: str, flag_key: str, policy: GuardPolicy, at: datetime
) -> _Measured:
    window = policy.soak_window
    newest = source.newest_sample_time(environment, at)
    counts = source.flag_counts(environment, flag_key, window, at)
    rates = source.evaluation_rates(environment, window, at)
    errors = source.error_rates(environment, window, at)
    versions = source.instance_versions(environment, at)
    unavailable = unavailable_evidence(source)
    return _Measured(
        source=source.name,
        newest=newest,
        variants=variant_counts(counts),
        rates=rates,
        errors=errors,
        versions=None
        if "config_version" in unavailable
        else dict(zip(versions["instance"], versions["config_version"], strict=True)),
        unavailable=unavailable,
    )


def unavailable_evidence(source: object) -> frozenset[str]:
    """What `source`'s emitter cannot provide (`queries.names.Evidence` values); nothing
    for a source that does not say (the database roll-ups hold every kind)."""
    gaps = getattr(source, "unavailable_evidence", None)
    if not isinstance(gaps, frozenset | set):
        return frozenset()
    return frozenset(str(gap) for gap in gaps)


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
        unavailable=measured.unavailable,
    )


def variant_counts(counts: pd.DataFrame) -> dict[str, VariantCounts]:
    """Per variant: all evaluations, failed ones (reason `error`, in any case), split-decided ones
    (`frames.FLAG_COUNT_COLUMNS`; a missing variant or count is left out)."""
    flags = [""] * len(counts)
    return _tally(flags, counts["variant"], counts["reason"], counts["evaluations"]).get("", {})


def variant_counts_by_flag(counts: pd.DataFrame) -> dict[str, dict[str, VariantCounts]]:
    """`variant_counts` of every flag of a `frames.VARIANT_COUNT_COLUMNS` frame, in one
    pass (a pandas group per flag cost ~20 ms each: 20 s at 1,000 flags)."""
    return _tally(counts["flag"], counts["variant"], counts["reason"], counts["evaluations"])


def _tally(
    flags: Iterable[object],
    variants: Iterable[object],
    reasons: Iterable[object],
    evaluations: Iterable[object],
) -> dict[str, dict[str, VariantCounts]]:
    """Sums per flag and variant, both sorted, as a pandas group-by sum does them: rows
    without a flag or variant (None / NaN) count nowhere, a missing count as 0."""
    sums: dict[str, dict[str, list[float]]] = {}
    for flag, variant, reason, value in zip(flags, variants, reasons, evaluations, strict=True):
        if _missing(flag) or _missing(variant):
            continue
        total = sums.setdefault(str(flag), {}).setdefault(str(variant), [0.0, 0.0, 0.0])
        if _missing(value):
            continue
        number = float(value)  # type: ignore[arg-type]
        total[0] += number
        if is_error_reason(reason):
            total[1] += number
        # OpenFeature's reasons are upper case (SPLIT, DEFAULT, ERROR), the seed's lower
        if str(reason).lower() in SPLIT_REASONS:
            total[2] += number
    return {
        flag: {variant: VariantCounts(*total) for variant, total in sorted(per.items())}
        for flag, per in sorted(sums.items())
    }


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
