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
from sqlalchemy import Engine

from app.analysis.exposure import (
    DEFAULT_STUCK_AFTER,
    ExposureCheck,
    Propagation,
    StepAge,
    exposure_check,
    next_gradual_step,
    propagation,
    step_age,
    time_to_mitigate,
)
from app.flags.backend import FlagSnapshot
from app.flags.model import GradualStep, RolloutStrategy
from app.rollout.audit import AuditEntry, Outcome
from app.rollout.evidence import variant_counts
from queries.flag_series import (
    ERROR_SERIES_COLUMNS,
    LATENCY_SERIES_COLUMNS,
    RATE_SERIES_COLUMNS,
    VARIANT_SERIES_COLUMNS,
    FlagSeriesQueries,
    PrometheusFlagSeries,
    SqlFlagSeries,
)
from queries.frames import empty_frame
from queries.prometheus import PrometheusMetrics
from queries.source import MetricsSource, SourceUnavailable
from queries.sql import SqlMetrics

__all__ = [
    "DEFAULT_RANGE",
    "LATENCY_QUANTILES",
    "MITIGATION_STEP",
    "PROMETHEUS_RETENTION",
    "RANGES",
    "ChangeMark",
    "FlagDetail",
    "FlagSource",
    "Mitigation",
    "PropagationView",
    "change_marks",
    "flag_detail_sources",
    "load_flag_detail",
    "range_step",
]

#: the time range picker's choices, and the spacing of their points
RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
_STEPS: dict[str, timedelta] = {
    "15m": timedelta(seconds=30),
    "1h": timedelta(minutes=1),
    "6h": timedelta(minutes=5),
    "24h": timedelta(minutes=20),
    "7d": timedelta(hours=2),
    "30d": timedelta(hours=12),
}
DEFAULT_RANGE = "1h"
#: Prometheus's default retention; older data only exists in the roll-ups
PROMETHEUS_RETENTION = timedelta(days=15)
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
#: time to mitigate: one point per scrape interval, the mean rate over 5 min before the
#: action as reference, and at most one hour after it
MITIGATION_STEP = timedelta(seconds=15)
MITIGATION_BEFORE = timedelta(minutes=5)
MITIGATION_HORIZON = timedelta(hours=1)
MITIGATION_THRESHOLD = 0.01
#: exposure is never judged on less than this (a change seconds ago has no counts)
_MIN_EXPOSURE_WINDOW = timedelta(seconds=15)


def range_step(range_name: str) -> timedelta:
    """The spacing of the points of a range (KeyError for an unknown one)."""
    return _STEPS[range_name]


@dataclass(frozen=True)
class FlagSource:
    """One backend's answers: the range series and the instant questions."""

    series: FlagSeriesQueries
    metrics: MetricsSource

    @property
    def name(self) -> str:
        return self.series.name


def flag_detail_sources(
    prometheus: PrometheusMetrics | None, engine: Engine | None
) -> list[FlagSource]:
    """Prometheus first when configured, then the database roll-ups."""
    found: list[FlagSource] = []
    if prometheus is not None:
        found.append(FlagSource(PrometheusFlagSeries(prometheus), prometheus))
    if engine is not None:
        found.append(FlagSource(SqlFlagSeries(engine), SqlMetrics(engine)))
    return found


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
    return ChangeMark(entry.at, label, entry.action, entry.from_percentage, entry.to_percentage)


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
    fall below 1 % of its rate before (`elapsed` None: not yet, or not measurable)."""

    change: ChangeMark
    variant: str
    series: pd.DataFrame  # RATE_SERIES_COLUMNS
    elapsed: timedelta | None
    source: str
    threshold: float = MITIGATION_THRESHOLD


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
    exposure: ExposureCheck | None
    exposure_window: timedelta
    applied_percentages: pd.DataFrame | None  # None: only Prometheus knows
    step_age: StepAge | None = None
    schedule: tuple[GradualStep, ...] = ()
    next_step: GradualStep | None = None
    propagation: PropagationView | None = None
    mitigation: Mitigation | None = None
    newest_sample: datetime | None = None
    notices: tuple[str, ...] = field(default=())
    retention: timedelta = PROMETHEUS_RETENTION

    @property
    def latest_rate(self) -> float | None:
        """Evaluations per second, all variants, at the newest point; None without data."""
        if self.variant_rates.empty:
            return None
        total = self.variant_rates.groupby("timestamp")["evaluations_per_second"].sum()
        return float(total.iloc[-1])

    @property
    def data_age_seconds(self) -> float | None:
        if self.newest_sample is None:
            return None
        return max(0.0, (self.end - self.newest_sample).total_seconds())


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
) -> FlagDetail:
    """The flag detail for `range_name` ending at `now`. `history` is the flag's audit
    entries in this environment (any outcome: only applied ones count).
    KeyError for an unknown range; UnknownFlag for a flag the snapshot lacks."""
    flag = snapshot.flag(flag_key)
    environment = snapshot.environment
    said = list(notices)
    step = _STEPS[range_name]
    end = _floor(now, MITIGATION_STEP)
    start = end - RANGES[range_name]
    beyond = start < now - retention
    series_sources = [s for s in sources if not (beyond and s.name == "prometheus")]
    applied = [e for e in history if e.outcome is Outcome.APPLIED]
    newest_change = max(applied, key=lambda e: e.at, default=None)
    exposure_window = RANGES[range_name]
    if newest_change is not None:
        exposure_window = min(exposure_window, now - newest_change.at)
    exposure_window = max(
        _MIN_EXPOSURE_WINDOW, timedelta(seconds=int(exposure_window.total_seconds()))
    )

    charts: tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
    exposure: ExposureCheck | None = None
    newest: datetime | None = None
    for source in series_sources:
        try:
            rates = source.series.variant_rates(environment, flag_key, start, end, step)
            errors = source.series.error_rates(environment, flag_key, start, end, step)
            latency = source.series.latency_quantiles(
                environment, flag_key, start, end, step, LATENCY_QUANTILES
            )
            counts = source.metrics.flag_counts(environment, flag_key, exposure_window, now)
            newest = source.metrics.newest_sample_time(environment, now)
        except SourceUnavailable as error:
            said.append(f"{error} — trying the next source.")
            continue
        charts = (source.name, rates, errors, latency)
        split = variant_counts(counts)
        treated = split[flag.rollout.variant].split if flag.rollout.variant in split else 0.0
        base = split[flag.default_variant].split if flag.default_variant in split else 0.0
        exposure = exposure_check(treated, base, flag.percentage)
        break
    if charts is None:
        said.append("No metrics source answered: no charts.")
        charts = (
            "none",
            empty_frame(VARIANT_SERIES_COLUMNS),
            empty_frame(ERROR_SERIES_COLUMNS),
            empty_frame(LATENCY_SERIES_COLUMNS),
        )

    return FlagDetail(
        flag=flag_key,
        environment=environment,
        range_name=range_name,
        start=start,
        end=end,
        step=step,
        source=charts[0],
        beyond_retention=beyond,
        variant_rates=charts[1],
        error_rates=charts[2],
        latency=charts[3],
        changes=change_marks(history, start, now),
        exposure=exposure,
        exposure_window=exposure_window,
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
        newest_sample=newest,
        notices=tuple(said),
        retention=retention,
    )


def _applied_percentages(
    sources: Sequence[FlagSource], environment: str, flag: str, now: datetime, said: list[str]
) -> pd.DataFrame | None:
    for source in sources:
        try:
            frame = source.series.applied_percentages(environment, flag, now)
        except SourceUnavailable as error:
            said.append(f"{error}: per-instance percentages are not shown.")
            continue
        if frame is not None:
            return frame
    return None


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
    for source in sources:
        try:
            versions = source.metrics.instance_versions(snapshot.environment, now)
        except SourceUnavailable as error:
            said.append(f"{error}: trying the next source for instance versions.")
            continue
        reported = dict(
            zip(
                versions["instance"].astype(str),
                versions["config_version"].astype(str),
                strict=True,
            )
        )
        return PropagationView(_mark(change), wanted, propagation(reported, wanted), source.name)
    return PropagationView(_mark(change), wanted, None, "none")


def _mitigation(
    sources: Sequence[FlagSource],
    snapshot: FlagSnapshot,
    flag_key: str,
    change: AuditEntry | None,
    now: datetime,
    retained_since: datetime,
    said: list[str],
) -> Mitigation | None:
    """Only after a change that lowered exposure (a rollback or a kill)."""
    if change is None or change.to_percentage >= change.from_percentage:
        return None
    variant = snapshot.flag(flag_key).rollout.variant
    start = _floor(change.at - MITIGATION_BEFORE, MITIGATION_STEP)
    end = _floor(min(now, change.at + MITIGATION_HORIZON), MITIGATION_STEP)
    for source in sources:
        if source.name == "prometheus" and start < retained_since:
            continue
        try:
            series = source.series.variant_rate(
                snapshot.environment, flag_key, variant, start, end, MITIGATION_STEP
            )
        except SourceUnavailable as error:
            said.append(f"{error}: trying the next source for time to mitigate.")
            continue
        points = zip(series["timestamp"], series["evaluations_per_second"], strict=True)
        elapsed = time_to_mitigate(
            ((t.to_pydatetime(), float(v)) for t, v in points),
            change.at,
            MITIGATION_THRESHOLD,
            MITIGATION_BEFORE,
        )
        return Mitigation(_mark(change), variant, series, elapsed, source.name)
    return Mitigation(_mark(change), variant, empty_frame(RATE_SERIES_COLUMNS), None, "none")
