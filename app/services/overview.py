"""The overview: every flag of one environment with its live numbers and health.

`build_overview_rows` is the pure rule (frames in, rows out); `load_overview` asks the
sources, falling back from Prometheus to the database roll-ups when Prometheus cannot
answer, and says so in `notices` instead of failing.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pandas as pd

from app.analysis.failures import FlagErrors, errors_by_flag
from app.analysis.freshness import data_age_seconds
from app.analysis.health import (
    Health,
    HealthThresholds,
    VariantComparison,
    compare_variants,
    error_ratio,
    health_report,
)
from app.flags.backend import ExternalEdit
from app.flags.model import FlagConfig, FlagDefinition, FlagState
from app.rollout.evidence import error_counts_by_flag, variant_counts_by_flag
from app.rollout.guards import VariantCounts
from queries.frames import (
    ERROR_COUNT_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    LATENCY_COLUMNS,
    SPARKLINE_COLUMNS,
    VARIANT_COUNT_COLUMNS,
    empty_frame,
)
from queries.names import ErrorsIn
from queries.source import MetricsSource, counting_queries, first_answer, no_series_notice

__all__ = [
    "ExternalEdit",
    "FlagRow",
    "LastChange",
    "Overview",
    "OverviewFilter",
    "build_overview_rows",
    "filter_rows",
    "flag_count_text",
    "load_overview",
    "pending_first",
    "treatment_vs_control",
    "with_external_changes",
]


@dataclass(frozen=True)
class LastChange:
    at: datetime
    actor: str
    action: str
    from_percentage: float
    to_percentage: float
    #: for a change made outside the dashboard (in Unleash's own UI or API), what its
    #: log says: 'changed in Unleash by olga: rollout 5 % → 25 %'
    summary: str = ""


@dataclass(frozen=True)
class FlagRow:
    """What the overview shows of one flag."""

    flag: str
    phase: int | None
    state: FlagState
    percentage: float
    description: str
    evaluations_per_second: float
    variants: dict[str, float]  # variant -> share of evaluations (0..1)
    error_rate: float | None
    p50_seconds: float | None
    p99_seconds: float | None
    health: Health
    sparkline: tuple[float, ...] = ()
    last_change: LastChange | None = None
    #: why the flag is not healthy, worst first ('errors 6.67 % > 5 %')
    reasons: tuple[str, ...] = ()
    #: when a kill or rollback took the rollout variant out of every evaluation
    mitigated_at: datetime | None = None
    #: why the dashboard only shows this flag (a flag server's flag it cannot map safely)
    read_only: str = ""

    @property
    def why(self) -> str:
        return " · ".join(self.reasons)

    def as_json(self) -> dict[str, Any]:
        """The stable `status --json` fields (docs/design.md §6)."""
        change = self.last_change
        return {
            "flag": self.flag,
            "phase": self.phase,
            "state": str(self.state),
            "percentage": self.percentage,
            "evaluations_per_second": self.evaluations_per_second,
            "variants": self.variants,
            "error_rate": self.error_rate,
            "p99_seconds": self.p99_seconds,
            "health": str(self.health),
            "reasons": list(self.reasons),
            "last_change": None
            if change is None
            else {
                "at": change.at.isoformat(),
                "actor": change.actor,
                "action": change.action,
                "from_percentage": None if change.summary else change.from_percentage,
                "to_percentage": None if change.summary else change.to_percentage,
                "summary": change.summary or None,
            },
        }


@dataclass(frozen=True)
class Overview:
    environment: str
    source: str
    generated_at: datetime
    newest_sample: datetime | None
    rows: tuple[FlagRow, ...]
    queries: int = 0
    notices: tuple[str, ...] = field(default=())

    @property
    def data_age_seconds(self) -> float | None:
        return data_age_seconds(self.newest_sample, self.generated_at)


@dataclass(frozen=True)
class OverviewFilter:
    """What a viewer narrowed the table to; empty means everything."""

    phases: frozenset[int] = frozenset()
    states: frozenset[FlagState] = frozenset()
    health: frozenset[Health] = frozenset()
    text: str = ""


def build_overview_rows(
    config: FlagConfig,
    rates: pd.DataFrame,
    errors: Mapping[str, FlagErrors],
    latency: pd.DataFrame,
    sparklines: pd.DataFrame,
    changes: pd.DataFrame,
    thresholds: HealthThresholds,
    now: datetime,
    recent: timedelta,
    counts: Mapping[str, Mapping[str, VariantCounts]] | None = None,
    read_only: Mapping[str, str] | None = None,
) -> list[FlagRow]:
    """One row per configured flag, sorted: unhealthy first, then degraded, then
    recently changed, then by phase and key. Metrics of unconfigured flags are ignored.
    `errors` (flag -> its failed evaluations over the window, `app.analysis.failures`)
    gives the error rate, 0 for a flag it lacks. `counts` (flag -> variant -> counts over
    the window, where a source gave them) lets the health catch a treatment failing
    significantly more than its control, where failures carry their variant. A
    flag killed or rolled back to 0 % whose rollout variant is no longer evaluated is
    mitigated (`mitigated_at`): never red; the page says since when. `read_only` (flag →
    reason) marks the flags the dashboard shows but cannot change."""
    per_variant: dict[str, dict[str, float]] = {}
    for flag, variant, rate in _columns(rates, "flag", "variant", "evaluations_per_second"):
        per_variant.setdefault(str(flag), {})[str(variant)] = float(rate)
    quantiles = {
        (str(f), float(q)): float(s) for f, q, s in _columns(latency, "flag", "quantile", "seconds")
    }
    lines: dict[str, list[float]] = {}
    in_time = sparklines.sort_values("timestamp", kind="stable")
    for flag, value in _columns(in_time, "flag", "evaluations_per_second"):
        lines.setdefault(str(flag), []).append(float(value))
    summaries = (
        changes["summary"].fillna("").tolist() if "summary" in changes else [""] * len(changes)
    )
    last = {
        str(flag): LastChange(at, str(actor), str(action), float(before), float(after), summary)
        for (flag, at, actor, action, before, after), summary in zip(
            _columns(changes, "flag", "at", "actor", "action", "from_percentage", "to_percentage"),
            summaries,
            strict=True,
        )
    }

    rows = []
    for key, flag in config.flags.items():
        variants = per_variant.get(key, {})
        total = sum(variants.values())
        failures = errors.get(key)
        ratio = error_ratio(total, 0.0) if failures is None else failures.rate
        p99 = quantiles.get((key, 0.99))
        comparison = treatment_vs_control(
            flag,
            (counts or {}).get(key, {}),
            per_variant=failures is None or failures.per_variant,
        )
        report = health_report(total, ratio, p99, thresholds, comparison)
        mitigated_at = _mitigated_at(flag, last.get(key), variants)
        health = report.health
        if mitigated_at is not None and health is Health.UNHEALTHY:
            # the kill did what it could: what still fails is the control's, worth a
            # look but no longer an alarm at the top
            health = Health.DEGRADED
        rows.append(
            FlagRow(
                flag=key,
                phase=flag.phase,
                state=flag.state,
                percentage=flag.percentage,
                description=flag.metadata.description,
                evaluations_per_second=total,
                variants={v: r / total for v, r in sorted(variants.items())} if total else {},
                error_rate=ratio,
                p50_seconds=quantiles.get((key, 0.5)),
                p99_seconds=p99,
                health=health,
                sparkline=tuple(lines.get(key, ())),
                last_change=last.get(key),
                reasons=report.reasons,
                mitigated_at=mitigated_at,
                read_only=(read_only or {}).get(key, ""),
            )
        )

    def order(row: FlagRow) -> tuple[int, int, int, str]:
        changed = row.last_change is not None and now - row.last_change.at <= recent
        return (
            min(row.health.severity, 2),
            0 if changed else 1,
            row.phase if row.phase is not None else 99,
            row.flag,
        )

    return sorted(rows, key=order)


def with_external_changes(changes: pd.DataFrame, external: Sequence[ExternalEdit]) -> pd.DataFrame:
    """`changes` (the dashboard's last applied change per flag) with the changes made
    outside the dashboard: per flag, whichever is newer. An outside change carries its
    `summary` ('changed in Unleash by olga: …') and no percentages (NaN)."""
    if not external:
        return changes
    newest: dict[str, ExternalEdit] = {}
    for edit in external:
        if edit.flag not in newest or edit.at > newest[edit.flag].at:
            newest[edit.flag] = edit
    frame = changes.copy()
    if "summary" not in frame:
        frame["summary"] = ""
    ours = {str(flag): at for flag, at in _columns(frame, "flag", "at")}
    outside = [
        edit
        for flag, edit in sorted(newest.items())
        if flag not in ours or pd.Timestamp(edit.at) > pd.Timestamp(ours[flag])
    ]
    if not outside:
        return frame
    kept = frame[~frame["flag"].isin({edit.flag for edit in outside})]
    added = pd.DataFrame(
        {
            "flag": [edit.flag for edit in outside],
            "at": [edit.at for edit in outside],
            "actor": [edit.actor for edit in outside],
            "action": ["external"] * len(outside),
            "from_percentage": [math.nan] * len(outside),
            "to_percentage": [math.nan] * len(outside),
            "summary": [edit.label for edit in outside],
        }
    )
    return pd.concat([kept, added], ignore_index=True) if len(kept) else added


def _columns(frame: pd.DataFrame, *names: str) -> Iterator[tuple[Any, ...]]:
    """The rows of `frame`'s columns `names` as tuples of Python values: each column
    converted at once (iterating a frame's rows costs a pandas object per cell)."""
    return zip(*(frame[name].tolist() for name in names), strict=True)


def treatment_vs_control(
    flag: FlagDefinition, counts: Mapping[str, VariantCounts], *, per_variant: bool = True
) -> VariantComparison | None:
    """The rollout variant's error ratio against the default's (one-sided test); None
    when either has no counts, they are the same variant, or the emitter's failed
    evaluations carry no variant (`per_variant` false: `FlagErrors.per_variant`)."""
    treated, base = counts.get(flag.rollout.variant), counts.get(flag.default_variant)
    if treated is None or base is None or flag.rollout.variant == flag.default_variant:
        return None
    if not per_variant:  # each variant's reason-error evaluations are not its failures
        return None
    return compare_variants(
        flag.rollout.variant,
        treated.errors,
        treated.evaluations,
        flag.default_variant,
        base.errors,
        base.evaluations,
    )


_LOWERING = frozenset({"kill", "rollback", "emergency_rollback"})


def _mitigated_at(
    flag: FlagDefinition, change: LastChange | None, variants: Mapping[str, float]
) -> datetime | None:
    """The kill's time when the flag sits at 0 % after a kill or rollback and its
    rollout variant has no evaluation left in the window; None otherwise."""
    if change is None or change.action not in _LOWERING or flag.percentage > 0:
        return None
    if change.to_percentage >= change.from_percentage:
        return None
    if variants.get(flag.rollout.variant, 0.0) > 0:
        return None
    return change.at


def filter_rows(rows: Sequence[FlagRow], wanted: OverviewFilter) -> list[FlagRow]:
    """Rows matching every non-empty criterion; text matches key or description."""
    text = wanted.text.strip().lower()
    return [
        row
        for row in rows
        if (not wanted.phases or row.phase in wanted.phases)
        and (not wanted.states or row.state in wanted.states)
        and (not wanted.health or row.health in wanted.health)
        and (not text or text in row.flag.lower() or text in row.description.lower())
    ]


def pending_first(rows: Sequence[FlagRow], pending: Collection[str]) -> list[FlagRow]:
    """`rows` with every flag in `pending` (a change request waits for it) moved to the
    top of its health group, in their order: unhealthy flags stay first, and a request
    waiting for a second operator is seen without scrolling."""
    return sorted(rows, key=lambda row: (min(row.health.severity, 2), row.flag not in pending))


def load_overview(
    *,
    config: FlagConfig,
    environment: str,
    sources: Sequence[MetricsSource],
    changes: pd.DataFrame,
    thresholds: HealthThresholds,
    window: timedelta,
    sparkline_span: timedelta,
    at: datetime,
    recent: timedelta,
    notices: Sequence[str] = (),
    read_only: Mapping[str, str] | None = None,
) -> Overview:
    """The overview from the first source that answers; each one that did not is named
    in `notices`. With no source answering, every flag shows `no_data`."""
    notices = list(notices)
    step = max(timedelta(seconds=60), sparkline_span / 30)

    def ask(source: MetricsSource) -> tuple[tuple[pd.DataFrame, ...], datetime | None, int]:
        """The five frames, the newest sample time, and how many queries they took."""
        counter = source.errors_in is not ErrorsIn.REASON
        with counting_queries() as sent:
            *frames, newest = _all_at_once(
                (
                    lambda: source.evaluation_rates(environment, window, at),
                    lambda: (
                        source.error_counts(environment, window, at)
                        if counter
                        else empty_frame(ERROR_COUNT_COLUMNS)
                    ),
                    lambda: source.latency_quantiles(environment, window, at),
                    lambda: source.evaluation_sparklines(
                        environment, at - sparkline_span, at, step
                    ),
                    lambda: source.variant_counts(environment, window, at),
                    lambda: source.newest_sample_time(environment, at),
                )
            )
        return tuple(cast(list[pd.DataFrame], frames)), cast("datetime | None", newest), sent.count

    answer = first_answer(sources, ask, notices, "showing the next source.")
    if answer is None:
        frames: tuple[pd.DataFrame, ...] = tuple(
            empty_frame(columns)
            for columns in (
                EVALUATION_RATE_COLUMNS,
                ERROR_COUNT_COLUMNS,
                LATENCY_COLUMNS,
                SPARKLINE_COLUMNS,
                VARIANT_COUNT_COLUMNS,
            )
        )
        notices.append("No metrics source answered: numbers are unavailable.")
        name, newest, queries, errors_in = "none", None, 0, ErrorsIn.BOTH
    else:
        source, (frames, newest, queries) = answer
        name, errors_in = source.name, source.errors_in
        missing = no_series_notice(source, environment) if newest is None else None
        if missing:
            notices.append(missing)
    rates, counted, latency, sparklines, counts = frames
    per_flag = variant_counts_by_flag(counts)
    errors = errors_by_flag(errors_in, per_flag, error_counts_by_flag(counted))
    rows = build_overview_rows(
        config,
        rates,
        errors,
        latency,
        sparklines,
        changes,
        thresholds,
        at,
        recent,
        counts=per_flag,
        read_only=read_only,
    )
    return Overview(
        environment=environment,
        source=name,
        generated_at=at,
        newest_sample=newest,
        rows=tuple(rows),
        queries=queries,
        notices=tuple(notices),
    )


def _all_at_once(questions: Sequence[Callable[[], object]]) -> list[object]:
    """Every answer, in order. The questions are independent and their time is the
    source's, so they are asked at once; each runs in a copy of the caller's context (its
    query count). When any fails, the first failure in order is raised, after all ended."""
    with ThreadPoolExecutor(len(questions), thread_name_prefix="overview") as pool:
        pending = [pool.submit(contextvars.copy_context().run, ask) for ask in questions]
    return [answer.result() for answer in pending]


def flag_count_text(shown: int, total: int) -> str:
    """'20 flags', or '2 of 20 flags' when a filter hides some."""
    noun = "flag" if total == 1 else "flags"
    return f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}"
