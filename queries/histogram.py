"""Quantiles from cumulative histogram buckets, computed exactly as PromQL does."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["check_quantiles", "histogram_quantile"]


def check_quantiles(quantiles: Sequence[float]) -> None:
    """ValueError unless every quantile is strictly within (0, 1): 0 and 1 give only
    the infinities, which no chart or verdict can use."""
    for quantile in quantiles:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be strictly within 0..1, got {quantile}")


def histogram_quantile(
    quantile: float, bounds: Sequence[float], cumulative: Sequence[float]
) -> float | None:
    """Prometheus's `histogram_quantile`: linear interpolation inside the bucket.

    `bounds` are the finite upper bounds, `cumulative` the counts for each bound plus a
    last one for +Inf. Returns None when there are no observations; a rank falling in
    the +Inf bucket gives the highest finite bound, as Prometheus does.
    """
    if len(cumulative) != len(bounds) + 1:
        raise ValueError("cumulative needs one count per bound plus one for +Inf")
    total = cumulative[-1]
    if total <= 0 or math.isnan(quantile):
        return None
    if quantile <= 0:
        return -math.inf
    if quantile >= 1:
        return math.inf
    rank = quantile * total
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if index == len(bounds):
        return bounds[-1]
    lower = 0.0 if index == 0 else bounds[index - 1]
    below = 0.0 if index == 0 else cumulative[index - 1]
    in_bucket = cumulative[index] - below
    if in_bucket <= 0:
        return bounds[index]
    return lower + (bounds[index] - lower) * (rank - below) / in_bucket
