"""Arithmetic every SQL roll-up question shares: times in UTC, the range-query step a
roll-up belongs to, and summed histogram buckets (PromQL's semantics, in one place)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

__all__ = ["as_utc", "covered_seconds", "newest_time", "step_slot", "sum_buckets"]

Key = TypeVar("Key", bound=Hashable)


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def step_slot(ended: datetime, start: datetime, step: timedelta) -> datetime:
    """The range-query point t = start + k * step whose window (t - step, t] holds
    `ended`, as PromQL's `rate(x[step])` at t would see a sample scraped at `ended`."""
    start = as_utc(start)
    steps = math.ceil((as_utc(ended) - start).total_seconds() / step.total_seconds() - 1e-9)
    return start + steps * step


def sum_buckets(rows: Iterable[tuple[Key, Sequence[float]]], width: int) -> dict[Key, list[float]]:
    """Cumulative bucket counts summed per key; rows of another width (written with
    other bucket bounds) are not comparable and are left out."""
    totals: dict[Key, list[float]] = {}
    for key, counts in rows:
        if len(counts) != width:
            continue
        summed = totals.setdefault(key, [0.0] * width)
        for i, count in enumerate(counts):
            summed[i] += count
    return totals


def covered_seconds(
    intervals: Iterable[tuple[datetime, float]], start: datetime, end: datetime, step: timedelta
) -> dict[datetime, float]:
    """Seconds the distinct roll-up intervals (end, length) cover in each step of the
    range from `start` to `end` (each at most the step); intervals after `end` are left
    out. A step only partly covered (the newest, still being written) is not a dip."""
    covered: dict[datetime, float] = {}
    last = as_utc(end)
    for ended, seconds in intervals:
        slot = step_slot(ended, start, step)
        if slot <= last:
            covered[slot] = covered.get(slot, 0.0) + float(seconds)
    limit = step.total_seconds()
    return {slot: min(limit, seconds) for slot, seconds in covered.items()}


def newest_time(value: datetime | str | None) -> datetime | None:
    """A `max(interval_end)` read back from the database, in UTC (SQLite returns
    aggregates untyped, as ISO text); None stays None."""
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
