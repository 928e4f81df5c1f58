"""The metrics questions answered from the database roll-ups (no Prometheus needed).

A roll-up belongs to the window (at - window, at] when its interval *ends* inside it,
the way a PromQL `rate(...[window])` sees the samples scraped inside it. Rates divide
by the time the roll-ups actually cover inside the window (at most the window), so a
freshly started workload is not under-reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Engine, Executable, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.metrics_db.records import LATENCY_BUCKETS
from app.metrics_db.schema import InstanceReport, RollupRow
from queries.frames import (
    ERROR_RATE_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    FLAG_COUNT_COLUMNS,
    INSTANCE_VERSION_COLUMNS,
    LATENCY_COLUMNS,
    SPARKLINE_COLUMNS,
    empty_frame,
)
from queries.histogram import histogram_quantile
from queries.series_math import step_slot, sum_buckets
from queries.source import SourceUnavailable

__all__ = ["SqlMetrics"]


class SqlMetrics:
    """`MetricsSource` over the `evaluation_rollups` table; one SQL query per question
    (plus one for the covered time, shared by the rate questions)."""

    name = "sql"

    def __init__(self, engine: Engine, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._engine = engine
        self._buckets = buckets
        self.issued = 0  # SQL statements run, for the "queries per page load" figure

    def evaluation_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        query = (
            select(RollupRow.flag, RollupRow.variant, func.sum(RollupRow.evaluations))
            .where(*_in_window(environment, window, at, flag))
            .group_by(RollupRow.flag, RollupRow.variant)
        )
        return self._per_second(query, environment, window, at, EVALUATION_RATE_COLUMNS)

    def error_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        query = (
            select(RollupRow.flag, func.sum(RollupRow.errors))
            .where(*_in_window(environment, window, at, flag))
            .group_by(RollupRow.flag)
        )
        return self._per_second(query, environment, window, at, ERROR_RATE_COLUMNS)

    def latency_quantiles(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        quantiles: tuple[float, ...] = (0.5, 0.99),
        flag: str | None = None,
    ) -> pd.DataFrame:
        query = select(RollupRow.flag, RollupRow.latency_buckets).where(
            *_in_window(environment, window, at, flag), RollupRow.latency_count > 0
        )
        totals = sum_buckets(self._fetch(query), len(self._buckets) + 1)
        records = [
            (name, q, value)
            for name, cumulative in totals.items()
            for q in quantiles
            if (value := histogram_quantile(q, self._buckets, cumulative)) is not None
            and math.isfinite(value)
        ]
        if not records:
            return empty_frame(LATENCY_COLUMNS)
        return pd.DataFrame(records, columns=list(LATENCY_COLUMNS))

    def evaluation_sparklines(
        self, environment: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """One point per `step` from `start` to `end`, like a PromQL range query: the
        point at t is the rate over the roll-ups ending in (t - step, t], divided by the
        time they cover."""
        query = (
            select(
                RollupRow.flag,
                RollupRow.interval_end,
                RollupRow.interval_seconds,
                func.sum(RollupRow.evaluations),
            )
            .where(
                RollupRow.environment == environment,
                RollupRow.interval_end > start - step,
                RollupRow.interval_end <= end,
            )
            .group_by(RollupRow.flag, RollupRow.interval_end, RollupRow.interval_seconds)
        )
        step_s = step.total_seconds()
        sums: dict[tuple[str, datetime], float] = {}
        intervals: dict[datetime, set[tuple[datetime, float]]] = {}
        for name, ended, seconds, count in self._fetch(query):
            slot = step_slot(ended, start, step)
            sums[(name, slot)] = sums.get((name, slot), 0.0) + float(count)
            intervals.setdefault(slot, set()).add((ended, float(seconds)))
        if not sums:
            return empty_frame(SPARKLINE_COLUMNS)
        # A step only partly covered (the newest, still being written) is not a dip.
        covered = {slot: min(step_s, sum(s for _, s in seen)) for slot, seen in intervals.items()}
        frame = pd.DataFrame(
            [(name, when, total / covered[when]) for (name, when), total in sorted(sums.items())],
            columns=list(SPARKLINE_COLUMNS),
        )
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def newest_sample_time(self, environment: str, at: datetime) -> datetime | None:
        query = select(func.max(RollupRow.interval_end)).where(
            RollupRow.environment == environment, RollupRow.interval_end <= at
        )
        rows = self._fetch(query)
        newest = rows[0][0] if rows else None
        if isinstance(newest, str):  # SQLite returns aggregates untyped
            newest = datetime.fromisoformat(newest)
        if newest is not None and newest.tzinfo is None:
            newest = newest.replace(tzinfo=at.tzinfo)
        return newest

    def flag_counts(
        self, environment: str, flag: str, window: timedelta, at: datetime
    ) -> pd.DataFrame:
        query = (
            select(RollupRow.variant, RollupRow.reason, func.sum(RollupRow.evaluations))
            .where(*_in_window(environment, window, at, flag))
            .group_by(RollupRow.variant, RollupRow.reason)
        )
        rows = [(v, r, float(n)) for v, r, n in self._fetch(query)]
        if not rows:
            return empty_frame(FLAG_COUNT_COLUMNS)
        return pd.DataFrame(rows, columns=list(FLAG_COUNT_COLUMNS))

    def instance_versions(
        self, environment: str, at: datetime, live: timedelta = timedelta(minutes=2)
    ) -> pd.DataFrame:
        """Instances that reported within `live` before `at` (older ones are gone)."""
        query = select(InstanceReport.instance, InstanceReport.config_version).where(
            InstanceReport.environment == environment,
            InstanceReport.reported_at > at - live,
            InstanceReport.reported_at <= at + live,
        )
        rows = [tuple(row) for row in self._fetch(query)]
        if not rows:
            return empty_frame(INSTANCE_VERSION_COLUMNS)
        return pd.DataFrame(rows, columns=list(INSTANCE_VERSION_COLUMNS))

    def _per_second(
        self,
        query: Executable,
        environment: str,
        window: timedelta,
        at: datetime,
        columns: tuple[str, ...],
    ) -> pd.DataFrame:
        rows = self._fetch(query)
        covered = self._covered_seconds(environment, window, at)
        if not rows or covered <= 0:
            return empty_frame(columns)
        return pd.DataFrame(
            [(*keys, float(count) / covered) for *keys, count in rows], columns=list(columns)
        )

    def _covered_seconds(self, environment: str, window: timedelta, at: datetime) -> float:
        query = (
            select(RollupRow.interval_end, RollupRow.interval_seconds)
            .where(*_in_window(environment, window, at, None))
            .distinct()
        )
        covered = sum((float(seconds) for _, seconds in self._fetch(query)), 0.0)
        return min(covered, window.total_seconds())

    def _fetch(self, query: Executable) -> Sequence[Any]:
        self.issued += 1
        try:
            with self._engine.connect() as connection:
                return connection.execute(query).all()
        except SQLAlchemyError as error:
            raise SourceUnavailable("metrics database", type(error).__name__) from error


def _in_window(
    environment: str, window: timedelta, at: datetime, flag: str | None
) -> list[ColumnElement[bool]]:
    conditions = [
        RollupRow.environment == environment,
        RollupRow.interval_end > at - window,
        RollupRow.interval_end <= at,
    ]
    if flag is not None:
        conditions.append(RollupRow.flag == flag)
    return conditions
