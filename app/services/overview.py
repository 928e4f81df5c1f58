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
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd

from app.analysis.failures import FlagErrors
from app.analysis.freshness import data_age_seconds
from app.analysis.health import Health, HealthThresholds, error_ratio, health_report
from app.evidence.comparison import VariantComparison, compare_variants
from app.evidence.gates import GateSettings
from app.evidence.sequential import Arm
from app.evidence.windows import slot_end_at_or_before
from app.flags.backend import ExternalEdit
from app.flags.model import FlagConfig, FlagDefinition, FlagState
from app.rollout.evidence import LiveEvidence, flag_slots, live_evidence
from app.rollout.guards import VariantCounts
from queries.frames import (
    EVALUATION_RATE_COLUMNS,
    LATENCY_COLUMNS,
    SLOT_COUNT_COLUMNS,
    SLOT_ERROR_COLUMNS,
    SPARKLINE_COLUMNS,
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
    "live_comparisons",
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
    #: whether the evidence recorded with the change proved the treatment worse (a
    #: gated error rate or guardrail failed on data); None: no evidence was recorded
    proven_worse: bool | None = None


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
    #: when a kill or rollback took the rollout variant out of every evaluation after
    #: the evidence proved it worse (`LastChange.proven_worse`): mitigated
    mitigated_at: datetime | None = None
    #: when a kill or rollback took the rollout variant out of every evaluation without
    #: evidence that it was worse: not called mitigated
    withdrawn_at: datetime | None = None
    #: why the dashboard only shows this flag (a flag server's flag it cannot map safely)
    read_only: str = ""
    #: the window the error rate and the comparison are over ('last 5 min', 'since the
    #: step began 2 min ago': `app.evidence.windows.live_since`)
    error_window: str = ""

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
            "error_window": self.error_window,
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
    comparisons: Mapping[str, VariantComparison] | None = None,
    read_only: Mapping[str, str] | None = None,
    windows: Mapping[str, str] | None = None,
) -> list[FlagRow]:
    """One row per configured flag, sorted: unhealthy first, then degraded, then
    recently changed, then by phase and key. Metrics of unconfigured flags are ignored.
    `errors` (flag -> its failed evaluations over the window, `app.analysis.failures`)
    gives the error rate, 0 for a flag it lacks; `windows` (flag -> the window's words)
    names the window. `comparisons` (flag -> its treatment against its control over the
    same window, `live_comparisons`) lets the health catch a treatment proven worse. A
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
    recorded = changes["guards"].tolist() if "guards" in changes else [None] * len(changes)
    last = {
        str(flag): LastChange(
            at,
            str(actor),
            str(action),
            float(before),
            float(after),
            summary,
            proven_worse(guards),
        )
        for (flag, at, actor, action, before, after), summary, guards in zip(
            _columns(changes, "flag", "at", "actor", "action", "from_percentage", "to_percentage"),
            summaries,
            recorded,
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
        comparison = (comparisons or {}).get(key)
        worse = comparison.short if comparison is not None and comparison.worse else ""
        report = health_report(total, ratio, p99, thresholds, worse)
        withdrawn_at = _withdrawn_at(flag, last.get(key), variants)
        proven = withdrawn_at is not None and last[key].proven_worse is True
        mitigated_at = withdrawn_at if proven else None
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
                withdrawn_at=None if proven else withdrawn_at,
                read_only=(read_only or {}).get(key, ""),
                error_window=(windows or {}).get(key, ""),
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
    flag: FlagDefinition, counts: Mapping[str, VariantCounts]
) -> tuple[str, Arm, str, Arm] | None:
    """The rollout variant's failed evaluations and the default's, as
    `app.evidence.comparison.compare_variants` compares them; None when they are the
    same variant or either has no counts."""
    treated, base = counts.get(flag.rollout.variant), counts.get(flag.default_variant)
    if treated is None or base is None or flag.rollout.variant == flag.default_variant:
        return None
    return (
        flag.rollout.variant,
        Arm(min(treated.errors, treated.evaluations), treated.evaluations),
        flag.default_variant,
        Arm(min(base.errors, base.evaluations), base.evaluations),
    )


def live_comparisons(
    config: FlagConfig, live: Mapping[str, LiveEvidence], settings: GateSettings
) -> dict[str, VariantComparison]:
    """Every flag's treatment against its control over its live window, all at once;
    none where the emitter's failed evaluations carry no variant
    (`FlagErrors.per_variant`: each variant's reason-error evaluations are not its
    failures)."""
    pairs: dict[str, tuple[str, Arm, str, Arm]] = {}
    for key, evidence in live.items():
        flag = config.flags.get(key)
        pair = None if flag is None else treatment_vs_control(flag, evidence.variants)
        if pair is not None and evidence.errors.per_variant:
            pairs[key] = pair
    judged = compare_variants(list(pairs.values()), settings)
    return dict(zip(pairs, judged, strict=True))


_LOWERING = frozenset({"kill", "rollback", "emergency_rollback"})


#: the gates whose failure on data proves the treatment worse (not a split mismatch)
_WORSE = frozenset({"error_rate", "guardrail"})


def proven_worse(guards: object) -> bool | None:
    """Whether a recorded guard report (`GuardResult.as_json` rows) proved the treatment
    worse: a gated error rate or guardrail failed on data. None without a report (a
    person's kill or rollback records none: nothing was measured)."""
    if not isinstance(guards, list) or not guards:
        return None
    return any(
        isinstance(g, Mapping)
        and not g.get("passed")
        and g.get("on_data")
        and not g.get("dry_run")
        and str(g.get("name", "")).split(" ")[0].split(": ")[-1] in _WORSE
        for g in guards
    )


def _withdrawn_at(
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
    gates: GateSettings | None = None,
    notices: Sequence[str] = (),
    read_only: Mapping[str, str] | None = None,
) -> Overview:
    """The overview from the first source that answers; each one that did not is named
    in `notices`. With no source answering, every flag shows `no_data`. Errors and the
    treatment-vs-control comparison are over each flag's live window (the last `window`
    of whole slots of `gates`' grid, or since its step began when later: `live_since`),
    read from the same slot counts and judged at the same level as the guards."""
    notices = list(notices)
    settings = gates or GateSettings()
    step = max(timedelta(seconds=60), sparkline_span / 30)
    slot = settings.plan.slot
    end = slot_end_at_or_before(at.timestamp(), slot)
    span = max(slot, round(window.total_seconds() / slot) * slot)
    grid = (_utc(end - span), _utc(end), timedelta(seconds=slot))

    def ask(source: MetricsSource) -> tuple[tuple[pd.DataFrame, ...], datetime | None, int]:
        """The five frames, the newest sample time, and how many queries they took."""
        counter = source.errors_in is not ErrorsIn.REASON
        with counting_queries() as sent:
            *frames, newest = _all_at_once(
                (
                    lambda: source.evaluation_rates(environment, window, at),
                    lambda: (
                        source.slot_error_counts(environment, *grid)
                        if counter
                        else empty_frame(SLOT_ERROR_COLUMNS)
                    ),
                    lambda: source.latency_quantiles(environment, window, at),
                    lambda: source.evaluation_sparklines(
                        environment, at - sparkline_span, at, step
                    ),
                    lambda: source.slot_counts(environment, *grid),
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
                SLOT_ERROR_COLUMNS,
                LATENCY_COLUMNS,
                SPARKLINE_COLUMNS,
                SLOT_COUNT_COLUMNS,
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
    live = live_evidence(
        flag_slots(
            counts, counted if errors_in is not ErrorsIn.REASON else None, end - span, end, slot
        ),
        errors_in,
        steps_began(changes),
        at,
        span,
        slot,
    )
    rows = build_overview_rows(
        config,
        rates,
        {key: evidence.errors for key, evidence in live.items()},
        latency,
        sparklines,
        changes,
        thresholds,
        at,
        recent,
        comparisons=live_comparisons(config, live, settings),
        read_only=read_only,
        windows={key: evidence.window for key, evidence in live.items()},
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


def steps_began(changes: pd.DataFrame) -> dict[str, float]:
    """Flag → when its current step began (epoch seconds): its last change, made
    through the dashboard or in the flag server."""
    return {
        str(flag): pd.Timestamp(at).timestamp()
        for flag, at in _columns(changes, "flag", "at")
        if not pd.isna(at)
    }


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


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
