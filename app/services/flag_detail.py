"""The flag detail's data: charts over a time range, exposure, step age, schedule,
propagation and time to mitigate, each from the first source that answers.

Sources are tried in order (Prometheus, then the database roll-ups); each one that did
not answer is named in `notices`. A range reaching further back than Prometheus keeps
data (`PROMETHEUS_RETENTION`, Prometheus's default `--storage.tsdb.retention.time` of
15 days, until it becomes a setting) is read from the roll-ups, and the page says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from app.analysis.exposure import (
    DEFAULT_STUCK_AFTER,
    EXPOSURE_TOLERANCE,
    Propagation,
    StepAge,
    next_gradual_step,
    propagation,
    step_age,
    time_to_mitigate,
    time_to_target_share,
)
from app.analysis.freshness import data_age_seconds
from app.analysis.health import error_ratio
from app.audit import AuditEntry, Outcome
from app.evidence.gates import FlagGates
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagConfig, FlagDefinition, GradualStep, RolloutStrategy
from app.rollout.guards import GuardInputs
from app.services.overview import proven_worse
from queries.flag_series import (
    ERROR_SERIES_COLUMNS,
    LATENCY_SERIES_COLUMNS,
    RATE_SERIES_COLUMNS,
    VARIANT_SERIES_COLUMNS,
    FlagSeriesQueries,
)
from queries.frames import empty_frame
from queries.source import MetricsSource, first_answer, no_series_notice
from queries.sources import Sources

__all__ = [
    "DEFAULT_RANGE",
    "DEFAULT_REFRESH",
    "LATENCY_QUANTILES",
    "MITIGATION_STEP",
    "MITIGATION_THRESHOLD",
    "PROMETHEUS_RETENTION",
    "QUANTILE_LABELS",
    "RANGES",
    "REFRESH",
    "ChangeMark",
    "FlagDetail",
    "FlagSource",
    "Mitigation",
    "PropagationView",
    "VariantErrors",
    "change_marks",
    "dependencies_table",
    "flag_detail_sources",
    "history_table",
    "latency_in_ms",
    "load_flag_detail",
    "range_step",
    "rules_table",
    "schedule_table",
    "serving_text",
    "variant_error_table",
]

#: the time range picker's choices: (how far back a range looks, the spacing of its points)
_RANGES_AND_STEPS: dict[str, tuple[timedelta, timedelta]] = {
    "15m": (timedelta(minutes=15), timedelta(seconds=30)),
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=20)),
    "7d": (timedelta(days=7), timedelta(hours=2)),
    "30d": (timedelta(days=30), timedelta(hours=12)),
}
#: the time range picker's choices and how far back each looks
RANGES: dict[str, timedelta] = {name: span for name, (span, _) in _RANGES_AND_STEPS.items()}
DEFAULT_RANGE = "1h"
#: the refresh picker's choices (seconds between two refreshes of the panels; None: off)
REFRESH: dict[str, int | None] = {"off": None, "10 s": 10, "30 s": 30, "1 min": 60, "5 min": 300}
DEFAULT_REFRESH = "30 s"
#: Prometheus's default retention; older data only exists in the roll-ups
PROMETHEUS_RETENTION = timedelta(days=15)
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
QUANTILE_LABELS: dict[float, str] = {0.5: "p50", 0.95: "p95", 0.99: "p99"}
#: time to mitigate: one point per scrape interval, the mean rate over 5 min before the
#: action as reference, and at most one hour after it
MITIGATION_STEP = timedelta(seconds=15)
MITIGATION_BEFORE = timedelta(minutes=5)
MITIGATION_HORIZON = timedelta(hours=1)
MITIGATION_THRESHOLD = 0.01


def range_step(range_name: str) -> timedelta:
    """The spacing of the points of a range (KeyError for an unknown one)."""
    return _RANGES_AND_STEPS[range_name][1]


@dataclass(frozen=True)
class FlagSource:
    """One backend's answers: the range series and the instant questions."""

    series: FlagSeriesQueries
    metrics: MetricsSource

    @property
    def name(self) -> str:
        return self.series.name


def flag_detail_sources(sources: Sources) -> list[FlagSource]:
    """Prometheus first when configured, then the database roll-ups."""
    return [FlagSource(series, metrics) for series, metrics in sources.flag_series()]


@dataclass(frozen=True)
class ChangeMark:
    """An applied rollout change as drawn on the charts: '25 → 50 % · alice'."""

    at: datetime
    label: str
    action: str
    from_percentage: float
    to_percentage: float


def change_marks(
    entries: Sequence[AuditEntry], start: datetime, end: datetime
) -> tuple[ChangeMark, ...]:
    """The applied changes in [start, end], oldest first."""
    return tuple(
        _mark(e)
        for e in sorted(entries, key=lambda entry: entry.at)
        if e.outcome is Outcome.APPLIED and start <= e.at <= end
    )


def _mark(entry: AuditEntry) -> ChangeMark:
    label = f"{entry.from_percentage:g} → {entry.to_percentage:g} % · {entry.actor}"
    return ChangeMark(
        entry.at, label, str(entry.action), entry.from_percentage, entry.to_percentage
    )


@dataclass(frozen=True)
class PropagationView:
    """Who loaded the config version current since `change`; `result` None when no
    source reports instance versions."""

    change: ChangeMark
    wanted: str
    result: Propagation | None
    source: str


@dataclass(frozen=True)
class Mitigation:
    """After a rollback or kill: the rolled-back variant's rate and how long it took to
    be mitigated (`elapsed` None: not yet, or not measurable). After a kill, mitigated
    means its rate fell below `threshold` of its rate before; after a partial rollback
    (`target` set, a share 0..1), that its observed share came within `tolerance` of
    the new target."""

    change: ChangeMark
    variant: str
    series: pd.DataFrame  # RATE_SERIES_COLUMNS
    elapsed: timedelta | None
    source: str
    threshold: float = MITIGATION_THRESHOLD
    target: float | None = None
    tolerance: float = EXPOSURE_TOLERANCE
    #: the evidence recorded with the change proved the treatment worse: only then is
    #: taking it out called mitigating (`app.services.overview.proven_worse`)
    proven_worse: bool | None = None

    @property
    def name(self) -> str:
        """'Time to mitigate' after a change the evidence justified; otherwise 'Time to
        take the treatment out': nothing recorded says it was worse."""
        return "Time to mitigate" if self.proven_worse else "Time to take the treatment out"

    @property
    def goal(self) -> str:
        """'below 1 % of its rate before' after a kill; 'at a share within 2 points of 1 %'
        after a partial rollback."""
        if self.target is None:
            return f"below {100 * self.threshold:g} % of its rate before"
        return f"at a share within {100 * self.tolerance:g} points of {100 * self.target:g} %"


@dataclass(frozen=True)
class VariantErrors:
    """One variant's evaluations and failed evaluations over the range."""

    variant: str
    evaluations: float
    errors: float

    @property
    def ratio(self) -> float | None:
        return error_ratio(self.evaluations, self.errors)


@dataclass(frozen=True)
class FlagDetail:
    """Everything the flag detail page draws below the actions, with provenance."""

    flag: str
    environment: str
    range_name: str
    start: datetime
    end: datetime
    step: timedelta
    source: str  # "prometheus" | "sql" | "none": who answered the charts
    beyond_retention: bool
    variant_rates: pd.DataFrame  # VARIANT_SERIES_COLUMNS
    error_rates: pd.DataFrame  # ERROR_SERIES_COLUMNS
    latency: pd.DataFrame  # LATENCY_SERIES_COLUMNS
    changes: tuple[ChangeMark, ...]
    applied_percentages: pd.DataFrame | None  # None: only Prometheus knows
    step_age: StepAge | None = None
    schedule: tuple[GradualStep, ...] = ()
    next_step: GradualStep | None = None
    propagation: PropagationView | None = None
    mitigation: Mitigation | None = None
    newest_sample: datetime | None = None
    notices: tuple[str, ...] = field(default=())
    retention: timedelta = PROMETHEUS_RETENTION
    history: tuple[AuditEntry, ...] = ()
    #: what the guards see since the step began (`app.rollout.evidence`): the errors by
    #: variant, treatment against control and the exposure are read from it, so they
    #: are the guard report's numbers over the guard report's window
    judged: GuardInputs | None = None

    @property
    def gates(self) -> FlagGates | None:
        return None if self.judged is None else self.judged.gates

    @property
    def window(self) -> str:
        """The judged window in words: 'since the step began 42 min ago'."""
        return "" if self.judged is None else self.judged.window

    @property
    def variant_errors(self) -> tuple[VariantErrors, ...]:
        """Each variant's evaluations and failed evaluations since the step began."""
        counts = {} if self.judged is None or self.judged.variants is None else self.judged.variants
        return tuple(
            VariantErrors(variant, c.evaluations, c.errors) for variant, c in sorted(counts.items())
        )

    @property
    def latest_rate(self) -> float | None:
        """Evaluations per second, all variants, at the newest point; None without data."""
        if self.variant_rates.empty:
            return None
        total = self.variant_rates.groupby("timestamp")["evaluations_per_second"].sum()
        return float(total.iloc[-1])

    @property
    def data_age_seconds(self) -> float | None:
        return data_age_seconds(self.newest_sample, self.end)


def _floor(moment: datetime, step: timedelta) -> datetime:
    """`moment` rounded down to a whole multiple of `step` since the epoch: with 15 s
    every point falls on a roll-up end (and on the scrapes of a steady 15 s cadence)."""
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, tz=UTC)


def load_flag_detail(
    sources: Sequence[FlagSource],
    snapshot: FlagSnapshot,
    flag_key: str,
    history: Sequence[AuditEntry],
    range_name: str,
    now: datetime,
    retention: timedelta = PROMETHEUS_RETENTION,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    notices: Sequence[str] = (),
    judged: GuardInputs | None = None,
) -> FlagDetail:
    """The flag detail for `range_name` ending at `now`. `history` is the flag's audit
    entries in this environment (any outcome: only applied ones count); `judged` is what
    the guards see since the step began (`Runtime.judged`), carried for the errors by
    variant and the exposure. KeyError for an unknown range; UnknownFlag for a flag the
    snapshot lacks."""
    flag = snapshot.flag(flag_key)
    environment = snapshot.environment
    said = list(notices)
    step = range_step(range_name)
    end = _floor(now, MITIGATION_STEP)
    start = end - RANGES[range_name]
    beyond = start < now - retention
    series_sources = [s for s in sources if not (beyond and s.name == "prometheus")]
    applied = [e for e in history if e.outcome is Outcome.APPLIED]
    newest_change = max(applied, key=lambda e: e.at, default=None)

    def charts(source: FlagSource) -> _Measured:
        return _Measured(
            source.series.variant_rates(environment, flag_key, start, end, step),
            source.series.error_rates(environment, flag_key, start, end, step),
            source.series.latency_quantiles(
                environment, flag_key, start, end, step, LATENCY_QUANTILES
            ),
            source.metrics.newest_sample_time(environment, now),
        )

    answer = first_answer(series_sources, charts, said, "trying the next source.")
    if answer is None:
        said.append("No metrics source answered: no charts.")
    elif answer[1].newest is None:
        missing = no_series_notice(answer[0].metrics, environment)
        if missing:
            said.append(missing)
    source_name = "none" if answer is None else answer[0].name
    measured = _Measured.nothing() if answer is None else answer[1]

    return FlagDetail(
        flag=flag_key,
        environment=environment,
        range_name=range_name,
        start=start,
        end=end,
        step=step,
        source=source_name,
        beyond_retention=beyond,
        variant_rates=measured.rates,
        error_rates=measured.errors,
        latency=measured.latency,
        changes=change_marks(history, start, now),
        applied_percentages=_applied_percentages(sources, environment, flag_key, now, said),
        step_age=step_age(flag.state, flag.percentage, applied, now, stuck_after),
        schedule=tuple(sorted(flag.rollout.schedule, key=lambda s: s.at))
        if flag.rollout.strategy is RolloutStrategy.GRADUAL
        else (),
        next_step=next_gradual_step(flag.rollout, now),
        propagation=_propagation(sources, snapshot, newest_change, now, said),
        mitigation=_mitigation(
            sources, snapshot, flag_key, newest_change, now, now - retention, said
        ),
        newest_sample=measured.newest,
        notices=tuple(said),
        retention=retention,
        history=tuple(history),
        judged=judged,
    )


@dataclass(frozen=True)
class _Measured:
    """One source's answers for the charts, exposure and the per-variant errors."""

    rates: pd.DataFrame
    errors: pd.DataFrame
    latency: pd.DataFrame
    newest: datetime | None

    @classmethod
    def nothing(cls) -> _Measured:
        return cls(
            empty_frame(VARIANT_SERIES_COLUMNS),
            empty_frame(ERROR_SERIES_COLUMNS),
            empty_frame(LATENCY_SERIES_COLUMNS),
            None,
        )


def _applied_percentages(
    sources: Sequence[FlagSource], environment: str, flag: str, now: datetime, said: list[str]
) -> pd.DataFrame | None:
    answer = first_answer(
        sources,
        lambda source: source.series.applied_percentages(environment, flag, now),
        said,
        "per-instance percentages are read from the next source.",
    )
    return None if answer is None else answer[1]


def _propagation(
    sources: Sequence[FlagSource],
    snapshot: FlagSnapshot,
    change: AuditEntry | None,
    now: datetime,
    said: list[str],
) -> PropagationView | None:
    if change is None:
        return None
    wanted = snapshot.config.loaded_version
    answer = first_answer(
        sources,
        lambda source: source.metrics.instance_versions(snapshot.environment, now),
        said,
        "trying the next source for instance versions.",
    )
    if answer is None:
        return PropagationView(_mark(change), wanted, None, "none")
    source, versions = answer
    reported = dict(
        zip(versions["instance"].astype(str), versions["config_version"].astype(str), strict=True)
    )
    return PropagationView(_mark(change), wanted, propagation(reported, wanted), source.name)


def _mitigation(
    sources: Sequence[FlagSource],
    snapshot: FlagSnapshot,
    flag_key: str,
    change: AuditEntry | None,
    now: datetime,
    retained_since: datetime,
    said: list[str],
) -> Mitigation | None:
    """Only after a change that lowered exposure: a kill (to 0 %) waits for the rate to
    fall, a partial rollback for the share to reach its new target."""
    if change is None or change.to_percentage >= change.from_percentage:
        return None
    proven = proven_worse(change.guards)
    flag = snapshot.flag(flag_key)
    variant = flag.rollout.variant
    start = _floor(change.at - MITIGATION_BEFORE, MITIGATION_STEP)
    end = _floor(min(now, change.at + MITIGATION_HORIZON), MITIGATION_STEP)
    usable = [s for s in sources if not (s.name == "prometheus" and start < retained_since)]
    answer = first_answer(
        usable,
        lambda source: source.series.variant_rates(
            snapshot.environment, flag_key, start, end, MITIGATION_STEP
        ),
        said,
        "trying the next source for time to mitigate.",
    )
    if answer is None:
        return Mitigation(
            _mark(change),
            variant,
            empty_frame(RATE_SERIES_COLUMNS),
            None,
            "none",
            proven_worse=proven,
        )
    source, rates = answer
    by_variant = rates.pivot_table(
        index="timestamp", columns="variant", values="evaluations_per_second", aggfunc="sum"
    ).fillna(0.0)
    treated = by_variant[variant] if variant in by_variant else pd.Series(dtype=float)
    series = pd.DataFrame(
        {"timestamp": treated.index, "evaluations_per_second": treated.to_numpy(dtype=float)}
    )
    if change.to_percentage > 0:
        base = (
            by_variant[flag.default_variant]
            if flag.default_variant in by_variant
            else pd.Series(0.0, index=treated.index)
        )
        split = treated + base
        shares = [
            (_utc(at), float(t / total))
            for at, t, total in zip(treated.index, treated, split, strict=True)
            if total > 0
        ]
        target = change.to_percentage / 100
        elapsed = time_to_target_share(shares, change.at, target, EXPOSURE_TOLERANCE)
        return Mitigation(
            _mark(change), variant, series, elapsed, source.name, target=target, proven_worse=proven
        )
    elapsed = time_to_mitigate(
        ((_utc(at), float(v)) for at, v in zip(treated.index, treated, strict=True)),
        change.at,
        MITIGATION_THRESHOLD,
        MITIGATION_BEFORE,
    )
    return Mitigation(_mark(change), variant, series, elapsed, source.name, proven_worse=proven)


def _utc(moment: object) -> datetime:
    return pd.Timestamp(moment).to_pydatetime()  # type: ignore[arg-type]


# -- the tables the page shows -----------------------------------------------------


def rules_table(flag: FlagDefinition) -> pd.DataFrame:
    """Targeting rules in the order they are tried: Priority, Rule, Condition, Variant."""
    return pd.DataFrame(
        [(r.priority, r.name, r.condition, r.variant) for r in flag.ordered_rules],
        columns=["Priority", "Rule", "Condition", "Variant"],
    )


def dependencies_table(config: FlagConfig, flag: FlagDefinition) -> pd.DataFrame:
    """The flags this one depends on with their rollout ('100 %'); an unknown one says so."""
    return pd.DataFrame(
        [
            (d, f"{config.flags[d].percentage:g} %" if d in config.flags else "not configured")
            for d in flag.metadata.dependencies
        ],
        columns=["Flag", "Rollout"],
    )


def history_table(entries: Sequence[AuditEntry]) -> pd.DataFrame:
    """The audit entries as read: Audit, At (UTC), Actor, Action, Change '25 → 50 %',
    Outcome, Reason."""
    return pd.DataFrame(
        [
            (
                e.id,
                e.at,
                e.actor,
                str(e.action),
                f"{e.from_percentage:g} → {e.to_percentage:g} %",
                str(e.outcome),
                e.reason,
            )
            for e in entries
        ],
        columns=["Audit", "At (UTC)", "Actor", "Action", "Change", "Outcome", "Reason"],
    )


def schedule_table(detail: FlagDetail) -> pd.DataFrame:
    """A gradual rollout's steps: At (UTC), Percentage, Status (done, next, upcoming)."""
    return pd.DataFrame(
        [
            (
                step.at,
                f"{step.percentage:g} %",
                "next"
                if step == detail.next_step
                else ("done" if step.at <= detail.end else "upcoming"),
            )
            for step in detail.schedule
        ],
        columns=["At (UTC)", "Percentage", "Status"],
    )


def latency_in_ms(latency: pd.DataFrame) -> pd.DataFrame:
    """The latency series (LATENCY_SERIES_COLUMNS) with the quantile named ('p99') and
    the value in milliseconds (`ms`)."""
    return latency.assign(
        quantile=latency["quantile"].map(lambda q: QUANTILE_LABELS.get(q, f"q{q:g}")),
        ms=1000 * latency["seconds"].astype(float),
    )


def variant_error_table(errors: Sequence[VariantErrors]) -> pd.DataFrame:
    """Variant, Evaluations, Failed, Error rate ('2.00 %'; a dash without evaluations)."""
    return pd.DataFrame(
        [
            (
                e.variant,
                f"{e.evaluations:,.0f}",
                f"{e.errors:,.0f}",
                "–" if e.ratio is None else f"{100 * e.ratio:.2f} %",
            )
            for e in errors
        ],
        columns=["Variant", "Evaluations", "Failed", "Error rate"],
    )


def serving_text(flag: FlagDefinition) -> str:
    """How the flag splits its users, in one line: 'Stickiness: userId · those in the
    rollout get blue 60 %, green 40 %; the others get off' (a flag server's variant
    weights), or 'Sticky per user · those in the rollout get on; the others get off'."""
    rollout = flag.rollout
    if rollout.stickiness:
        sticky = f"Stickiness: {rollout.stickiness}"
    else:
        sticky = "Sticky per user" if rollout.sticky else "Not sticky (random per evaluation)"
    weighted = {
        name: value["weight"]
        for name, value in flag.variants.items()
        if isinstance(value, dict) and isinstance(value.get("weight"), int | float)
    }
    served = (
        ", ".join(f"{name} {weight:g} %" for name, weight in weighted.items())
        if weighted
        else rollout.variant
    )
    return f"{sticky} · those in the rollout get {served}; the others get {flag.default_variant}"
