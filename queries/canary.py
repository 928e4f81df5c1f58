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
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from app.metrics_db.records import REQUEST_LATENCY_BUCKETS, RequestRollup
from app.metrics_db.schema import RequestRollup as RequestRollupRow
from queries.frames import empty_frame
from queries.histogram import histogram_quantile
from queries.prometheus import PrometheusQuestions
from queries.promql import label_name, promql_duration, promql_string, selector
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


def _check_quantile(quantile: float) -> None:
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be strictly within 0..1, got {quantile}")


def track_regex(tracks: Sequence[str]) -> str:
    """A PromQL string literal matching exactly `tracks`: each value regex-escaped
    (Python's `re.escape` output is valid RE2), then the whole string-escaped."""
    if not tracks:
        raise ValueError("at least one track is needed")
    return promql_string("|".join(re.escape(track) for track in tracks))


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

    def _selector(
        self, metric: str, environment: str, tracks: Sequence[str], extra: str = ""
    ) -> str:
        track = label_name(self.names.track_label)
        base = selector(metric, {self.names.environment_label: environment})
        return f"{base[:-1]},{track}=~{track_regex(tracks)}{extra}}}"

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
        every = self._selector(metric, environment, tracks)
        failed = self._selector(metric, environment, tracks, ',code=~"5.."')
        query = (
            f"label_replace(sum by ({track}) (increase({every}[{duration}])), "
            f'"kind", "requests", "", "") or '
            f"label_replace(sum by ({track}) (increase({failed}[{duration}])), "
            f'"kind", "errors", "", "")'
        )
        result = self._metrics._instant(query, at)
        counts: dict[str, list[float]] = {}
        with self._metrics._reading_reply():
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
        _check_quantile(quantile)
        track = label_name(self.names.track_label)
        step_text = promql_duration(step)
        buckets = self._selector(self.names.http_duration + "_bucket", environment, tracks)
        query = (
            f"histogram_quantile({float(quantile)!r}, "
            f"sum by ({track}, le) (rate({buckets}[{step_text}])))"
        )
        client = self._metrics._client
        result = self._metrics._call(
            query,
            lambda: client.custom_query_range(
                query, start_time=as_utc(start), end_time=as_utc(end), step=step_text
            ),
        )
        points: list[tuple[str, float, float]] = []
        with self._metrics._reading_reply():
            for series in result:
                name = series["metric"].get(track, "")
                for stamp, value in series["values"]:
                    points.append((name, float(stamp), float(value)))
        return _latency_frame(points)

    def newest_request_time(self, environment: str, at: datetime) -> datetime | None:
        """Time of the newest request sample within Prometheus's lookback before `at`."""
        every = selector(self.names.http_requests, {self.names.environment_label: environment})
        result = self._metrics._instant(f"max(timestamp({every}))", at)
        if not result:
            return None
        with self._metrics._reading_reply():
            seconds = float(result[0]["value"][1])
        return datetime.fromtimestamp(seconds, tz=UTC)


class SqlCanaryQueries:
    """The canary questions over the `request_rollups` table, one SQL query each."""

    name = "sql"

    def __init__(
        self, engine: Engine, buckets: tuple[float, ...] = REQUEST_LATENCY_BUCKETS
    ) -> None:
        self._engine = engine
        self._buckets = buckets
        self.issued = 0

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
            for track, requests, errors in self._fetch(query)
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
        _check_quantile(quantile)
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
                for track, ended, counts in self._fetch(query)
                if (slot := step_slot(ended, start, step)) <= last  # not after the range
            ),
            len(self._buckets) + 1,
        )
        points = []
        for (track, slot), cumulative in totals.items():
            value = histogram_quantile(quantile, self._buckets, cumulative)
            if value is not None:
                points.append((track, slot.timestamp(), value))
        return _latency_frame(points)

    def newest_request_time(self, environment: str, at: datetime) -> datetime | None:
        query = select(func.max(RequestRollupRow.interval_end)).where(
            RequestRollupRow.environment == environment, RequestRollupRow.interval_end <= at
        )
        rows = self._fetch(query)
        newest = rows[0][0] if rows else None
        if isinstance(newest, str):  # SQLite returns aggregates untyped
            newest = datetime.fromisoformat(newest)
        return None if newest is None else as_utc(newest)

    def _fetch(self, query: Any) -> Sequence[Any]:
        self.issued += 1
        try:
            with self._engine.connect() as connection:
                return connection.execute(query).all()
        except SQLAlchemyError as error:
            raise SourceUnavailable("metrics database", type(error).__name__) from error


def insert_request_rollups(engine: Engine, rollups: Iterable[RequestRollup]) -> int:
    """Append request roll-ups in one transaction; returns how many were written.

    Raises SourceUnavailable when the database refuses them.
    """
    rows = [
        {
            "interval_start": r.interval_start,
            "interval_seconds": r.interval_seconds,
            "interval_end": r.interval_end,
            "environment": r.environment,
            "track": r.track,
            "requests": r.requests,
            "errors": r.errors,
            "latency_sum": r.latency_sum,
            "latency_count": r.latency_count,
            "latency_buckets": list(r.latency_buckets),
        }
        for r in rollups
    ]
    if rows:
        try:
            with engine.begin() as connection:
                connection.execute(insert(RequestRollupRow), rows)
        except SQLAlchemyError as error:
            raise SourceUnavailable("metrics database", type(error).__name__) from error
    return len(rows)
