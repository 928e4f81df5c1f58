"""Range questions about one flag, from Prometheus or from the `evaluation_rollups` table.

One query per question, the same frames from both sources. A point at t is the rate over
the step ending at t, (t - step, t]: PromQL `rate(...[step])` at every step of a range
query; in SQL the roll-ups whose interval *ends* inside it, divided by the time the
environment's roll-ups cover there (like `SqlMetrics.evaluation_sparklines`). A step
the roll-ups cover but in which a variant had no row reads 0, as a flat counter does.

- `variant_rates`: evaluations per second by variant (`VARIANT_SERIES_COLUMNS`);
- `error_rates`: failed evaluations per second (`ERROR_SERIES_COLUMNS`);
- `latency_quantiles`: every quantile in one query (`LATENCY_SERIES_COLUMNS`);
- `variant_rate`: one variant's rate (`RATE_SERIES_COLUMNS`), for time to mitigate;
- `applied_percentages`: the percentage each instance applies
  (`APPLIED_PERCENTAGE_COLUMNS`); Prometheus only, None from the database.

Every failure surfaces as `SourceUnavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Engine, func, select

from app.metrics_db.records import LATENCY_BUCKETS
from app.metrics_db.schema import RollupRow
from queries.database import SqlQuestions, held_by
from queries.frames import empty_frame
from queries.histogram import check_quantiles, histogram_quantile
from queries.prometheus import PrometheusQuestions
from queries.promql import label_name, promql_duration, promql_string
from queries.series_math import as_utc, covered_seconds, step_slot, sum_buckets

__all__ = [
    "APPLIED_PERCENTAGE_COLUMNS",
    "ERROR_SERIES_COLUMNS",
    "LATENCY_SERIES_COLUMNS",
    "RATE_SERIES_COLUMNS",
    "VARIANT_SERIES_COLUMNS",
    "FlagSeriesQueries",
    "PrometheusFlagSeries",
    "SqlFlagSeries",
]

#: variant, timestamp (UTC, tz-aware), evaluations per second over the step ending there
VARIANT_SERIES_COLUMNS = ("variant", "timestamp", "evaluations_per_second")
#: timestamp, failed evaluations per second over the step ending there
ERROR_SERIES_COLUMNS = ("timestamp", "errors_per_second")
#: quantile (0..1), timestamp, latency seconds at that quantile over the step
LATENCY_SERIES_COLUMNS = ("quantile", "timestamp", "seconds")
#: timestamp, evaluations per second of one variant
RATE_SERIES_COLUMNS = ("timestamp", "evaluations_per_second")
#: instance, the rollout percentage it reports applying
APPLIED_PERCENTAGE_COLUMNS = ("instance", "percentage")


class FlagSeriesQueries(Protocol):
    """The flag detail's range questions; one implementation per source."""

    name: str

    @property
    def issued(self) -> list[str]:
        """Every query text sent, in order (a "queries per page load" figure reads it)."""
        ...

    def variant_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame: ...

    def error_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame: ...

    def latency_quantiles(
        self,
        environment: str,
        flag: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
    ) -> pd.DataFrame: ...

    def variant_rate(
        self,
        environment: str,
        flag: str,
        variant: str,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> pd.DataFrame: ...

    def applied_percentages(
        self, environment: str, flag: str, at: datetime
    ) -> pd.DataFrame | None: ...


def _series_frame(
    columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]], keyed: bool
) -> pd.DataFrame:
    """Frame from (key?, epoch seconds, value) rows; NaN / infinite values dropped."""
    kept = [row for row in rows if math.isfinite(row[-1])]
    if not kept:
        return empty_frame(columns)
    data: dict[str, Any] = {}
    if keyed:
        data[columns[0]] = [row[0] for row in kept]
    data["timestamp"] = pd.to_datetime([row[-2] for row in kept], unit="s", utc=True)
    data[columns[-1]] = [float(row[-1]) for row in kept]
    frame = pd.DataFrame(data, columns=list(columns))
    order = [columns[0], "timestamp"] if keyed else ["timestamp"]
    return frame.sort_values(order, ignore_index=True)


class PrometheusFlagSeries(PrometheusQuestions):
    """The range questions, sent through a `PrometheusMetrics`."""

    def variant_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """`sum by (variant) (rate(evaluations{flag}[step]))` at every step."""
        variant = label_name(self.names.variant_label)
        query = self.prometheus.evaluations_sum("rate", step, environment, flag, (variant,))
        return self._range_frame(
            VARIANT_SERIES_COLUMNS,
            query,
            start,
            end,
            step,
            key=lambda labels: labels.get(variant, ""),
        )

    def error_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """Failed evaluations per second; empty when `names.errors` is unset."""
        if not self.names.errors:
            return empty_frame(ERROR_SERIES_COLUMNS)
        metric = self.prometheus.series(self.names.errors, environment, flag)
        rate = self.prometheus.scoped(f"rate({metric}[{promql_duration(step)}])", environment)
        return self._range_frame(ERROR_SERIES_COLUMNS, f"sum({rate})", start, end, step)

    def latency_quantiles(
        self,
        environment: str,
        flag: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
    ) -> pd.DataFrame:
        """Every quantile in one range query (`label_replace(...) or ...`); empty when
        `names.duration` is unset. ValueError for a quantile outside (0, 1)."""
        check_quantiles(quantiles)
        if not self.names.duration or not quantiles:
            return empty_frame(LATENCY_SERIES_COLUMNS)
        metric = self.prometheus.series(self.names.duration + "_bucket", environment, flag)
        rate = self.prometheus.scoped(f"rate({metric}[{promql_duration(step)}])", environment)
        buckets = f"sum by (le) ({rate})"
        by_text = {repr(float(q)): float(q) for q in quantiles}
        query = " or ".join(
            f"label_replace(histogram_quantile({text}, {buckets}), "
            f'"quantile", {promql_string(text)}, "", "")'
            for text in by_text
        )
        return self._range_frame(
            LATENCY_SERIES_COLUMNS,
            query,
            start,
            end,
            step,
            key=lambda labels: by_text[labels["quantile"]],
        )

    def variant_rate(
        self,
        environment: str,
        flag: str,
        variant: str,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> pd.DataFrame:
        """One variant's evaluations per second at every step."""
        query = self.prometheus.evaluations_sum(
            "rate", step, environment, flag, (), labels={self.names.variant_label: variant}
        )
        return self._range_frame(RATE_SERIES_COLUMNS, query, start, end, step)

    def applied_percentages(self, environment: str, flag: str, at: datetime) -> pd.DataFrame:
        """The rollout percentage each instance reports in `rollout_percentage` at `at`."""
        if not self.names.rollout_percentage:
            return empty_frame(APPLIED_PERCENTAGE_COLUMNS)
        metric = self.prometheus.series(self.names.rollout_percentage, environment, flag)
        scoped = self.prometheus.scoped(metric, environment)
        result = self.prometheus.instant(f"max by (instance) ({scoped})", at)
        with self.prometheus.reading_reply():
            rows = [
                (str(series["metric"].get("instance", "")), float(series["value"][1]))
                for series in result
            ]
        if not rows:
            return empty_frame(APPLIED_PERCENTAGE_COLUMNS)
        frame = pd.DataFrame(rows, columns=list(APPLIED_PERCENTAGE_COLUMNS))
        return frame.sort_values("instance", ignore_index=True)

    def _range_frame(
        self,
        columns: tuple[str, ...],
        query: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        key: Callable[[dict[str, str]], Any] | None = None,
    ) -> pd.DataFrame:
        """`query` at every step as a `columns` frame; `key(labels)` fills the first
        column of a keyed frame, no `key` makes a single series (timestamp, value)."""
        points = self.prometheus.range_points(query, start, end, step)
        if key is None:
            series = [(stamp, value) for _, stamp, value in points]
            return _series_frame(columns, series, keyed=False)
        rows = [(key(labels), stamp, value) for labels, stamp, value in points]
        return _series_frame(columns, rows, keyed=True)


class SqlFlagSeries(SqlQuestions):
    """The range questions over the `evaluation_rollups` table: one SQL query per
    question, plus one for the time the environment's roll-ups cover per step."""

    def __init__(self, engine: Engine, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        super().__init__(engine, buckets)

    def variant_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        row = RollupRow
        query = (
            select(row.variant, row.interval_end, func.sum(held_by(row.evaluations, step)))
            .where(*self._in_range(environment, start, end, step), row.flag == flag)
            .group_by(row.variant, row.interval_end)
        )
        sums = self._slot_sums(self.fetch(query), start, end, step)
        return self._keyed_rates(sums, environment, start, end, step, VARIANT_SERIES_COLUMNS)

    def error_rates(
        self, environment: str, flag: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        row = RollupRow
        query = (
            select(row.interval_end, func.sum(held_by(row.errors, step)))
            .where(*self._in_range(environment, start, end, step), row.flag == flag)
            .group_by(row.interval_end)
        )
        rates = self._single_rates(query, environment, start, end, step)
        if rates is None:
            return empty_frame(ERROR_SERIES_COLUMNS)
        return rates.rename(columns={"evaluations_per_second": "errors_per_second"})

    def latency_quantiles(
        self,
        environment: str,
        flag: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
    ) -> pd.DataFrame:
        """The point at t is the quantile of the buckets summed over (t - step, t]."""
        check_quantiles(quantiles)
        row = RollupRow
        query = select(row.interval_end, row.latency_buckets).where(
            *self._in_range(environment, start, end, step),
            row.flag == flag,
            row.latency_count > 0,
        )
        last = as_utc(end)
        totals = sum_buckets(
            (
                (slot, counts)
                for ended, counts in self.fetch(query)
                if (slot := step_slot(ended, start, step)) <= last
            ),
            len(self.buckets) + 1,
        )
        rows = [
            (quantile, slot.timestamp(), value)
            for slot, cumulative in totals.items()
            for quantile in quantiles
            if (value := histogram_quantile(quantile, self.buckets, cumulative)) is not None
        ]
        return _series_frame(LATENCY_SERIES_COLUMNS, rows, keyed=True)

    def variant_rate(
        self,
        environment: str,
        flag: str,
        variant: str,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> pd.DataFrame:
        row = RollupRow
        query = (
            select(row.interval_end, func.sum(held_by(row.evaluations, step)))
            .where(
                *self._in_range(environment, start, end, step),
                row.flag == flag,
                row.variant == variant,
            )
            .group_by(row.interval_end)
        )
        rates = self._single_rates(query, environment, start, end, step)
        return empty_frame(RATE_SERIES_COLUMNS) if rates is None else rates

    def applied_percentages(self, environment: str, flag: str, at: datetime) -> None:
        """None: the roll-ups do not record what each instance applies."""
        return None

    # -- plumbing --------------------------------------------------------------------

    @staticmethod
    def _in_range(environment: str, start: datetime, end: datetime, step: timedelta) -> list[Any]:
        return [
            RollupRow.environment == environment,
            RollupRow.interval_end > as_utc(start) - step,
            RollupRow.interval_end <= as_utc(end),
        ]

    @staticmethod
    def _slot_sums(
        rows: Sequence[Any], start: datetime, end: datetime, step: timedelta
    ) -> dict[tuple[str, datetime], float]:
        sums: dict[tuple[str, datetime], float] = {}
        for key, ended, count in rows:
            slot = step_slot(ended, start, step)
            if slot <= as_utc(end):
                sums[(str(key), slot)] = sums.get((str(key), slot), 0.0) + float(count or 0)
        return sums

    def _keyed_rates(
        self,
        sums: dict[tuple[str, datetime], float],
        environment: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        columns: tuple[str, ...],
    ) -> pd.DataFrame:
        """Per key and covered step: sum / covered seconds; 0 where the key had no row."""
        if not sums:
            return empty_frame(columns)
        covered = self._covered(environment, start, end, step)
        keys = sorted({key for key, _ in sums})
        rows = [
            (key, slot.timestamp(), sums.get((key, slot), 0.0) / seconds)
            for key in keys
            for slot, seconds in sorted(covered.items())
            if seconds > 0
        ]
        return _series_frame(columns, rows, keyed=True)

    def _single_rates(
        self, query: Any, environment: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame | None:
        """One series from (interval_end, count) rows: (timestamp, evaluations_per_second)
        per covered step, 0 where no row; None when no row at all."""
        rows = [("", ended, count) for ended, count in self.fetch(query)]
        sums = self._slot_sums(rows, start, end, step)
        if not sums:
            return None
        keyed = self._keyed_rates(sums, environment, start, end, step, VARIANT_SERIES_COLUMNS)
        return keyed[list(RATE_SERIES_COLUMNS)].reset_index(drop=True)

    def _covered(
        self, environment: str, start: datetime, end: datetime, step: timedelta
    ) -> dict[datetime, float]:
        """Seconds the environment's roll-ups cover in each step (at most the step)."""
        query = (
            select(RollupRow.interval_end, RollupRow.interval_seconds)
            .where(*self._in_range(environment, start, end, step))
            .distinct()
        )
        return covered_seconds(self.fetch(query), start, end, step)
