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

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Engine, Executable, func, select

from app.metrics_db.records import LATENCY_BUCKETS
from app.metrics_db.schema import InstanceReport, RollupRow
from queries.database import SqlQuestions, held_by
from queries.frames import (
    ERROR_COUNT_COLUMNS,
    ERROR_RATE_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    INSTANCE_VERSION_COLUMNS,
    LATENCY_COLUMNS,
    SLOT_COUNT_COLUMNS,
    SLOT_ERROR_COLUMNS,
    SPARKLINE_COLUMNS,
    VARIANT_COUNT_COLUMNS,
    CountQuestions,
    check_slot_span,
    empty_frame,
)
from queries.histogram import histogram_quantile
from queries.names import ErrorsIn
from queries.series_math import as_utc, covered_seconds, step_slot, sum_buckets
from queries.source import SourceUnavailable

__all__ = ["SqlMetrics"]


class SqlMetrics(SqlQuestions, CountQuestions):
    """`MetricsSource` over the `evaluation_rollups` table; one SQL query per question
    (plus one for the covered time, shared by the rate questions)."""

    #: a roll-up keeps a failed evaluation both in its `errors` column, the counter, and
    #: under reason `error` (app/demo/simulator.py, as the reference evaluator counts it)
    errors_in = ErrorsIn.BOTH

    def __init__(self, engine: Engine, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        super().__init__(engine, buckets)

    def evaluation_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        query = (
            select(
                RollupRow.flag,
                RollupRow.variant,
                func.sum(held_by(RollupRow.evaluations, window)),
            )
            .where(*_in_window(environment, window, at, flag))
            .group_by(RollupRow.flag, RollupRow.variant)
        )
        return self._per_second(query, environment, window, at, EVALUATION_RATE_COLUMNS)

    def error_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        query = (
            select(RollupRow.flag, func.sum(held_by(RollupRow.errors, window)))
            .where(*_in_window(environment, window, at, flag))
            .group_by(RollupRow.flag)
        )
        return self._per_second(query, environment, window, at, ERROR_RATE_COLUMNS)

    def error_counts(self, environment: str, window: timedelta, at: datetime) -> pd.DataFrame:
        """The `errors` column summed by flag over the roll-ups of the window (the roll-ups
        `variant_counts` sums)."""
        query = (
            select(RollupRow.flag, func.sum(RollupRow.errors))
            .where(*_in_window(environment, window, at, None))
            .group_by(RollupRow.flag)
        )
        rows = [(flag, float(count)) for flag, count in self.fetch(query)]
        if not rows:
            return empty_frame(ERROR_COUNT_COLUMNS)
        return pd.DataFrame(rows, columns=list(ERROR_COUNT_COLUMNS))

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
        totals = sum_buckets(self.fetch(query), len(self.buckets) + 1)
        records = [
            (name, q, value)
            for name, cumulative in totals.items()
            for q in quantiles
            if (value := histogram_quantile(q, self.buckets, cumulative)) is not None
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
        sums: dict[tuple[str, datetime], float] = {}
        intervals: set[tuple[datetime, float]] = set()
        last = as_utc(end)
        for name, ended, seconds, count in self.fetch(query):
            slot = step_slot(ended, start, step)
            if slot <= last:
                held = float(count) * min(1.0, step.total_seconds() / float(seconds))
                sums[(name, slot)] = sums.get((name, slot), 0.0) + held
                intervals.add((ended, float(seconds)))
        if not sums:
            return empty_frame(SPARKLINE_COLUMNS)
        covered = covered_seconds(intervals, start, end, step)
        frame = pd.DataFrame(
            [(name, when, total / covered[when]) for (name, when), total in sorted(sums.items())],
            columns=list(SPARKLINE_COLUMNS),
        )
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def newest_sample_time(self, environment: str, at: datetime) -> datetime | None:
        return self.newest_end(RollupRow, environment, at)

    def _counts(
        self, environment: str, window: timedelta, at: datetime, flag: str | None
    ) -> pd.DataFrame:
        """Evaluations by flag, variant and reason in the window (`flag`: only that one)."""
        keys = (RollupRow.flag, RollupRow.variant, RollupRow.reason)
        query = (
            select(*keys, func.sum(RollupRow.evaluations))
            .where(*_in_window(environment, window, at, flag))
            .group_by(*keys)
        )
        rows = [(f, v, r, float(n)) for f, v, r, n in self.fetch(query)]
        if not rows:
            return empty_frame(VARIANT_COUNT_COLUMNS)
        return pd.DataFrame(rows, columns=list(VARIANT_COUNT_COLUMNS))

    def slot_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """Evaluations by flag, variant and reason per slot: each roll-up summed into the
        slot its `interval_end` falls in (a roll-up longer than a slot, an hour copied
        from Unleash, lands whole in the slot it ends in)."""
        check_slot_span(start, end, slot)
        if end <= start:
            return empty_frame(SLOT_COUNT_COLUMNS)
        keys = (RollupRow.flag, RollupRow.variant, RollupRow.reason)
        query = (
            select(*keys, RollupRow.interval_end, func.sum(RollupRow.evaluations))
            .where(*_in_span(environment, start, end))
            .group_by(*keys, RollupRow.interval_end)
        )
        return _into_slots(self.fetch(query), slot, SLOT_COUNT_COLUMNS)

    def guardrail_counts(
        self,
        query: str,
        labels: tuple[str, str],
        start: datetime,
        end: datetime,
        slot: timedelta,
    ) -> pd.DataFrame:
        """Never: the roll-ups hold the flags' evaluations, not the service's metrics."""
        raise SourceUnavailable(
            self.name, "it holds no service metrics: guardrails are read from Prometheus"
        )

    def slot_error_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """The `errors` column by flag per slot, over the roll-ups `slot_counts` sums."""
        check_slot_span(start, end, slot)
        if end <= start:
            return empty_frame(SLOT_ERROR_COLUMNS)
        query = (
            select(RollupRow.flag, RollupRow.interval_end, func.sum(RollupRow.errors))
            .where(*_in_span(environment, start, end))
            .group_by(RollupRow.flag, RollupRow.interval_end)
        )
        return _into_slots(self.fetch(query), slot, SLOT_ERROR_COLUMNS)

    def instance_versions(
        self, environment: str, at: datetime, live: timedelta = timedelta(minutes=2)
    ) -> pd.DataFrame:
        """Instances that reported within `live` before `at` (older ones are gone)."""
        query = select(InstanceReport.instance, InstanceReport.config_version).where(
            InstanceReport.environment == environment,
            InstanceReport.reported_at > at - live,
            InstanceReport.reported_at <= at + live,
        )
        rows = [tuple(row) for row in self.fetch(query)]
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
        rows = self.fetch(query)
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
        # one step, the window, ending at `at`: every roll-up of the query falls in it
        covered = covered_seconds(self.fetch(query), at, at, window)
        return covered.get(as_utc(at), 0.0)


def _in_span(environment: str, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [
        RollupRow.environment == environment,
        RollupRow.interval_end > start,
        RollupRow.interval_end <= end,
    ]


def _into_slots(
    rows: Sequence[Sequence[Any]], slot: timedelta, columns: tuple[str, ...]
) -> pd.DataFrame:
    """`columns` from rows of (keys…, interval end, count): each count summed into the
    slot (end − slot, end] its interval end falls in, the end a multiple of `slot`."""
    if not rows:
        return empty_frame(columns)
    keys = columns[:-2]
    frame = pd.DataFrame([tuple(row) for row in rows], columns=[*keys, "ended", "count"])
    seconds = slot.total_seconds()
    ended = np.array([as_utc(moment).timestamp() for moment in frame["ended"]])
    # rounded to the millisecond: a roll-up ending on a slot end belongs to that slot
    frame[columns[-2]] = np.ceil(np.round(ended, 3) / seconds - 1e-9) * seconds
    frame[columns[-1]] = frame["count"].astype(float)
    summed = frame.groupby([*keys, columns[-2]], sort=True)[columns[-1]].sum()
    return summed.reset_index()[list(columns)]


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
