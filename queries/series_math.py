"""Arithmetic every SQL roll-up question shares: times in UTC, the range-query step a
roll-up belongs to, and summed histogram buckets (PromQL's semantics, in one place)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

__all__ = ["as_utc", "step_slot", "sum_buckets"]

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
