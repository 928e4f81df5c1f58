"""Gathering what the advance guards look at, from whichever metrics source answers.

The advance guard and the autopilot ask the same questions (`measure_environment`) and
build their guard inputs the same way (`guard_inputs`): for one window they see the same
numbers, the flag-level errors from `app.analysis.failures` among them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.analysis.failures import FlagErrors, errors_by_flag, is_error_reason
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
from queries.names import ErrorsIn
from queries.source import MetricsSource, first_answer

if TYPE_CHECKING:  # frames arrive from the sources; this module never builds one
    import pandas as pd

__all__ = [
    "Measured",
    "error_counts_by_flag",
    "gather_guard_inputs",
    "guard_check",
    "guard_inputs",
    "measure_environment",
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
class Measured:
    """One source's answers about every flag of one environment over one window; all
    None when no source answered. `counts`: flag → variant → counts; `errors`: flag →
    its failed evaluations (`app.analysis.failures.flag_errors`)."""

    source: str = ""
    newest: datetime | None = None
    counts: Mapping[str, Mapping[str, VariantCounts]] | None = None
    errors: Mapping[str, FlagErrors] | None = None
    versions: Mapping[str, str] | None = None
    unavailable: frozenset[str] = frozenset()


def measure_environment(
    source: MetricsSource, environment: str, window: timedelta, at: datetime
) -> Measured:
    """Every flag of `environment` over `window` ending at `at`, whatever their number:
    the newest sample, the evaluations by flag, variant and reason, the error counter's
    counts (not asked where the emitter counts failures only as reasons) and the
    instances' config versions (not asked where it has no such gauge). Lets
    `SourceUnavailable` through."""
    newest = source.newest_sample_time(environment, at)
    counts = variant_counts_by_flag(source.variant_counts(environment, window, at))
    counter: dict[str, float] = {}
    if source.errors_in is not ErrorsIn.REASON:
        counter = error_counts_by_flag(source.error_counts(environment, window, at))
    unavailable = unavailable_evidence(source)
    versions = None
    if "config_version" not in unavailable:
        frame = source.instance_versions(environment, at)
        versions = dict(zip(frame["instance"], frame["config_version"], strict=True))
    return Measured(
        source=source.name,
        newest=newest,
        counts=counts,
        errors=errors_by_flag(source.errors_in, counts, counter),
        versions=versions,
        unavailable=unavailable,
    )


def unavailable_evidence(source: object) -> frozenset[str]:
    """What `source`'s emitter cannot provide (`queries.names.Evidence` values); nothing
    for a source that does not say (the database roll-ups hold every kind)."""
    gaps = getattr(source, "unavailable_evidence", None)
    if not isinstance(gaps, frozenset | set):
        return frozenset()
    return frozenset(str(gap) for gap in gaps)


def guard_inputs(
    measured: Measured,
    snapshot: FlagSnapshot,
    flag_key: str,
    *,
    at: datetime,
    at_step_since: datetime | None,
    notices: Sequence[str] = (),
) -> GuardInputs:
    """What the guards of `flag_key` look at in `measured` (its window is the guards'):
    its counts and errors, its dependencies' success from their errors."""
    flag = snapshot.flag(flag_key)
    counts, errors = measured.counts, measured.errors
    return GuardInputs(
        now=at,
        configured_percentage=flag.percentage,
        treatment=flag.rollout.variant,
        baseline=flag.default_variant,
        source=measured.source,
        newest_sample=measured.newest,
        variants=None if counts is None else dict(counts.get(flag_key, {})),
        errors=None if errors is None else errors.get(flag_key),
        at_step_since=at_step_since,
        dependencies=tuple(
            _dependency(snapshot, key, errors) for key in flag.metadata.dependencies
        ),
        instance_versions=measured.versions,
        current_config_version=snapshot.config.loaded_version,
        notices=tuple(notices),
        unavailable=measured.unavailable,
    )


def gather_guard_inputs(
    sources: Sequence[MetricsSource],
    audit: AuditLog,
    snapshot: FlagSnapshot,
    flag_key: str,
    policy: GuardPolicy,
    at: datetime,
) -> GuardInputs:
    """Everything the guards need over the soak window, from the first source that
    answers every question; a source that fails is named in `notices` and its numbers
    are not used."""
    environment = snapshot.environment
    snapshot.flag(flag_key)  # an unknown flag is refused before any source is asked
    notices: list[str] = []
    answer = first_answer(
        sources,
        lambda source: measure_environment(source, environment, policy.soak_window, at),
        notices,
        "trying the next source.",
    )
    changes = audit.entries(
        flag=flag_key, environment=environment, outcomes=(Outcome.APPLIED,), limit=1
    )
    return guard_inputs(
        Measured() if answer is None else answer[1],
        snapshot,
        flag_key,
        at=at,
        at_step_since=changes[0].at if changes else None,
        notices=notices,
    )


def error_counts_by_flag(counted: pd.DataFrame) -> dict[str, float]:
    """Flag → failures the error counter counted, from a `frames.ERROR_COUNT_COLUMNS`
    frame (a missing flag or count is left out)."""
    return {
        str(flag): float(errors)
        for flag, errors in zip(counted["flag"], counted["errors"], strict=True)
        if not _missing(flag) and not _missing(errors)
    }


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


def _dependency(
    snapshot: FlagSnapshot, key: str, errors: Mapping[str, FlagErrors] | None
) -> DependencyStatus:
    """A dependency's step and success (1 - its error rate); success None when it was
    not evaluated in the window or no source answered."""
    percentage = snapshot.config.flags[key].percentage if key in snapshot.config.flags else 0.0
    rate = None if errors is None or key not in errors else errors[key].rate
    return DependencyStatus(key, percentage, None if rate is None else 1.0 - rate)
