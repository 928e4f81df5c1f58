"""The data behind a canary verdict, from Prometheus or from the `request_rollups` table.

One query per question, the same frames from both sources:

- `request_counts`: requests and 5xx errors per track over (at - window, at]
  (`CANARY_COUNT_COLUMNS`); PromQL `increase` over the window, SQL the sum of the
  roll-ups whose interval *ends* inside it.
- `latency_series`: a latency quantile per track at every step from start to end
  (`CANARY_LATENCY_COLUMNS`); the point at t is `histogram_quantile` of the buckets
  observed in (t - step, t]. Points with no observations are left out.
- `newest_request_time`: the newest request sample at or before `at` (data age).

Every failure surfaces as `SourceUnavailable`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Protocol

import pandas as pd
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from app.metrics_db.records import REQUEST_LATENCY_BUCKETS, RequestRollup
from app.metrics_db.schema import RequestRollup as RequestRollupRow
from queries.database import SqlQuestions
from queries.frames import empty_frame
from queries.histogram import check_quantiles, histogram_quantile
from queries.prometheus import PrometheusQuestions
from queries.promql import label_name, promql_duration, promql_string
from queries.series_math import as_utc, step_slot, sum_buckets
from queries.source import SourceUnavailable

__all__ = [
    "CANARY_COUNT_COLUMNS",
    "CANARY_LATENCY_COLUMNS",
    "CANARY_TRACKS",
    "CanaryQueries",
    "PrometheusCanaryQueries",
    "SqlCanaryQueries",
    "insert_request_rollups",
    "track_pattern",
    "track_regex",
]

#: track, requests over the window, of which 5xx errors
CANARY_COUNT_COLUMNS = ("track", "requests", "errors")
#: track, timestamp (UTC, tz-aware), latency seconds at the quantile for that step
CANARY_LATENCY_COLUMNS = ("track", "timestamp", "seconds")
CANARY_TRACKS: tuple[str, ...] = ("canary", "stable")


class CanaryQueries(Protocol):
    """The canary questions; `PrometheusCanaryQueries` and `SqlCanaryQueries` answer them."""

    name: str

    @property
    def issued(self) -> list[str]:
        """Every query text sent, in order (a "queries per page load" figure reads it)."""
        ...

    def request_counts(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame: ...

    def latency_series(
        self,
        environment: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantile: float = 0.99,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame: ...

    def newest_request_time(self, environment: str, at: datetime) -> datetime | None: ...


def track_pattern(tracks: Sequence[str]) -> str:
    """A regular expression matching exactly `tracks`, each value regex-escaped
    (Python's `re.escape` output is valid RE2). ValueError for no track."""
    if not tracks:
        raise ValueError("at least one track is needed")
    return "|".join(re.escape(track) for track in tracks)


def track_regex(tracks: Sequence[str]) -> str:
    """`track_pattern(tracks)` as a PromQL string literal."""
    return promql_string(track_pattern(tracks))


def _counts_frame(counts: dict[str, list[float]]) -> pd.DataFrame:
    if not counts:
        return empty_frame(CANARY_COUNT_COLUMNS)
    rows = [(track, float(r), float(e)) for track, (r, e) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=list(CANARY_COUNT_COLUMNS))


def _latency_frame(points: Sequence[tuple[str, float, float]]) -> pd.DataFrame:
    """Frame from (track, epoch seconds, value) points; NaN / infinite values dropped."""
    kept = [p for p in points if math.isfinite(p[2])]
    if not kept:
        return empty_frame(CANARY_LATENCY_COLUMNS)
    frame = pd.DataFrame(
        {
            "track": [p[0] for p in kept],
            "timestamp": pd.to_datetime([p[1] for p in kept], unit="s", utc=True),
            "seconds": [p[2] for p in kept],
        }
    )
    return frame.sort_values(["track", "timestamp"], ignore_index=True)


class PrometheusCanaryQueries(PrometheusQuestions):
    """The canary questions, sent through a `PrometheusMetrics`."""

    def _tracks(
        self, metric: str, environment: str, tracks: Sequence[str], errors: bool = False
    ) -> str:
        """`metric` of `tracks` in `environment`; only 5xx responses when `errors`."""
        matching = {self.names.track_label: track_pattern(tracks)}
        if errors:
            matching["code"] = "5.."
        return self.prometheus.series(metric, environment, matching=matching)

    def request_counts(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame:
        """Requests and 5xx errors per track over the window, in one PromQL query."""
        track = label_name(self.names.track_label)
        duration = promql_duration(window)
        metric = self.names.http_requests
        every = self._tracks(metric, environment, tracks)
        failed = self._tracks(metric, environment, tracks, errors=True)
        scoped = self.prometheus.scoped
        every = scoped(f"increase({every}[{duration}])", environment)
        failed = scoped(f"increase({failed}[{duration}])", environment)
        query = (
            f"label_replace(sum by ({track}) ({every}), "
            f'"kind", "requests", "", "") or '
            f"label_replace(sum by ({track}) ({failed}), "
            f'"kind", "errors", "", "")'
        )
        result = self.prometheus.instant(query, at)
        counts: dict[str, list[float]] = {}
        with self.prometheus.reading_reply():
            for series in result:
                labels = series["metric"]
                row = counts.setdefault(labels.get(track, ""), [0.0, 0.0])
                row[0 if labels["kind"] == "requests" else 1] = float(series["value"][1])
        return _counts_frame(counts)

    def latency_series(
        self,
        environment: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantile: float = 0.99,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame:
        """`histogram_quantile` per track at every step, one range query."""
        check_quantiles((quantile,))
        track = label_name(self.names.track_label)
        step_text = promql_duration(step)
        buckets = self._tracks(self.names.http_duration + "_bucket", environment, tracks)
        query = (
            f"histogram_quantile({float(quantile)!r}, "
            f"sum by ({track}, le) "
            f"({self.prometheus.scoped(f'rate({buckets}[{step_text}])', environment)}))"
        )
        points = [
            (labels.get(track, ""), stamp, value)
            for labels, stamp, value in self.prometheus.range_points(query, start, end, step)
        ]
        return _latency_frame(points)

    def newest_request_time(self, environment: str, at: datetime) -> datetime | None:
        """Time of the newest request sample within Prometheus's lookback before `at`."""
        return self.prometheus.newest_time(self.names.http_requests, environment, at)


class SqlCanaryQueries(SqlQuestions):
    """The canary questions over the `request_rollups` table, one SQL query each."""

    def __init__(
        self, engine: Engine, buckets: tuple[float, ...] = REQUEST_LATENCY_BUCKETS
    ) -> None:
        super().__init__(engine, buckets)

    def request_counts(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame:
        """Requests and errors per track from the roll-ups ending in (at - window, at]."""
        row = RequestRollupRow
        query = (
            select(row.track, func.sum(row.requests), func.sum(row.errors))
            .where(
                row.environment == environment,
                row.track.in_(list(tracks)),
                row.interval_end > at - window,
                row.interval_end <= at,
            )
            .group_by(row.track)
        )
        counts = {
            str(track): [float(requests or 0), float(errors or 0)]
            for track, requests, errors in self.fetch(query)
        }
        return _counts_frame(counts)

    def latency_series(
        self,
        environment: str,
        start: datetime,
        end: datetime,
        step: timedelta,
        quantile: float = 0.99,
        tracks: Sequence[str] = CANARY_TRACKS,
    ) -> pd.DataFrame:
        """Like a PromQL range query: the point at t = start + k * step (t <= end) is the
        quantile of the buckets summed over the roll-ups ending in (t - step, t]."""
        check_quantiles((quantile,))
        row = RequestRollupRow
        query = select(row.track, row.interval_end, row.latency_buckets).where(
            row.environment == environment,
            row.track.in_(list(tracks)),
            row.interval_end > start - step,
            row.interval_end <= end,
            row.latency_count > 0,
        )
        last = as_utc(end)
        totals = sum_buckets(
            (
                ((str(track), slot), counts)
                for track, ended, counts in self.fetch(query)
                if (slot := step_slot(ended, start, step)) <= last  # not after the range
            ),
            len(self.buckets) + 1,
        )
        points = []
        for (track, slot), cumulative in totals.items():
            value = histogram_quantile(quantile, self.buckets, cumulative)
            if value is not None:
                points.append((track, slot.timestamp(), value))
        return _latency_frame(points)

    def newest_request_time(self, environment: str, at: datetime) -> datetime | None:
        return self.newest_end(RequestRollupRow, environment, at)


def insert_request_rollups(engine: Engine, rollups: Iterable[RequestRollup]) -> int:
    """Append request roll-ups in one transaction; returns how many were written.

    Raises SourceUnavailable when the database refuses them.
    """
    rows = [
        {**asdict(r), "interval_end": r.interval_end, "latency_buckets": list(r.latency_buckets)}
        for r in rollups
    ]
    if rows:
        try:
            with engine.begin() as connection:
                connection.execute(insert(RequestRollupRow), rows)
        except SQLAlchemyError as error:
            raise SourceUnavailable("metrics database", type(error).__name__) from error
    return len(rows)
