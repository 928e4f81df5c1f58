"""A deterministic evaluation workload whose rates and quantiles are known exactly.

Every 15 s interval holds the same counts, so any `rate()` over whole intervals equals
count / 15, and every `histogram_quantile` the linear interpolation computed below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from app.metrics_db.records import LATENCY_BUCKETS, EvaluationRollup

INTERVAL_SECONDS = 15

#: Observations per interval fall in exactly these buckets (the upper bound is the key).
FAST = 0.001  # observed as 0.0008 s, in (0.0005, 0.001]
SLOW = 0.01  # observed as 0.008 s, in (0.005, 0.01]
QUICK = 0.0005  # observed as 0.0004 s, in (0.00025, 0.0005]
MEDIUM = 0.0025  # observed as 0.002 s, in (0.001, 0.0025]
_OBSERVED = {FAST: 0.0008, SLOW: 0.008, QUICK: 0.0004, MEDIUM: 0.002}


@dataclass(frozen=True)
class _Rollup:
    environment: str
    flag: str
    variant: str
    reason: str
    evaluations: int
    errors: int
    #: bucket upper bound -> observations per interval (sums to `evaluations`)
    latency: dict[float, int]


_WORKLOAD: tuple[_Rollup, ...] = (
    _Rollup("production", "alpha", "on", "split", 10, 0, {FAST: 8, SLOW: 2}),
    _Rollup("production", "alpha", "off", "default", 5, 1, {FAST: 4, SLOW: 1}),
    _Rollup("production", "beta", "on", "static", 3, 0, {QUICK: 3}),
    _Rollup("staging", "alpha", "on", "split", 1, 0, {MEDIUM: 1}),
    _Rollup("staging", "alpha", "off", "default", 2, 0, {MEDIUM: 2}),
    _Rollup("staging", "gamma", "on", "targeting_match", 6, 2, {MEDIUM: 6}),
)

#: environment -> flag -> variant -> evaluations per second
EXPECTED_EVALUATION_RATES: dict[str, dict[str, dict[str, float]]] = {
    "production": {"alpha": {"on": 10 / 15, "off": 5 / 15}, "beta": {"on": 3 / 15}},
    "staging": {"alpha": {"on": 1 / 15, "off": 2 / 15}, "gamma": {"on": 6 / 15}},
}

#: environment -> flag -> failed evaluations per second (every flag has an error series)
EXPECTED_ERROR_RATES: dict[str, dict[str, float]] = {
    "production": {"alpha": 1 / 15, "beta": 0.0},
    "staging": {"alpha": 0.0, "gamma": 2 / 15},
}

#: environment -> (flag, variant, reason) -> evaluations in every 15 s interval
EXPECTED_COUNTS_PER_INTERVAL: dict[str, dict[tuple[str, str, str], int]] = {
    environment: {
        (r.flag, r.variant, r.reason): r.evaluations
        for r in _WORKLOAD
        if r.environment == environment
    }
    for environment in ("production", "staging")
}

#: environment -> flag -> failures the error counter counts in every 15 s interval
EXPECTED_ERRORS_PER_INTERVAL: dict[str, dict[str, int]] = {
    environment: {
        flag: sum(r.errors for r in _WORKLOAD if (r.environment, r.flag) == (environment, flag))
        for flag in {r.flag for r in _WORKLOAD if r.environment == environment}
    }
    for environment in ("production", "staging")
}

#: environment -> flag -> evaluations per second, all variants (what sparklines show)
EXPECTED_FLAG_RATES: dict[str, dict[str, float]] = {
    environment: {flag: sum(variants.values()) for flag, variants in flags.items()}
    for environment, flags in EXPECTED_EVALUATION_RATES.items()
}


def _histogram_quantile(quantile: float, per_bucket: dict[float, int]) -> float:
    """Prometheus's linear interpolation inside the bucket holding the rank."""
    bounds = (0.0, *LATENCY_BUCKETS)
    total = sum(per_bucket.values())
    rank = quantile * total
    cumulative = 0
    for lower, upper in pairwise(bounds):
        count = per_bucket.get(upper, 0)
        if cumulative + count >= rank and count > 0:
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    raise AssertionError("rank beyond the last finite bucket")


def _latency_by_flag(environment: str) -> dict[str, dict[float, int]]:
    merged: dict[str, dict[float, int]] = {}
    for rollup in _WORKLOAD:
        if rollup.environment == environment:
            buckets = merged.setdefault(rollup.flag, {})
            for bound, count in rollup.latency.items():
                buckets[bound] = buckets.get(bound, 0) + count
    return merged


#: environment -> flag -> quantile -> seconds; production alpha: p50 = 0.0005 + 0.0005 *
#: 7.5/12 = 0.0008125, p99 = 0.005 + 0.005 * 2.85/3 = 0.00975
EXPECTED_LATENCY_QUANTILES: dict[str, dict[str, dict[float, float]]] = {
    environment: {
        flag: {q: _histogram_quantile(q, buckets) for q in (0.5, 0.99)}
        for flag, buckets in _latency_by_flag(environment).items()
    }
    for environment in EXPECTED_EVALUATION_RATES
}


def _cumulative_buckets(latency: dict[float, int]) -> tuple[int, ...]:
    counts: list[int] = []
    running = 0
    for bound in LATENCY_BUCKETS:
        running += latency.get(bound, 0)
        counts.append(running)
    counts.append(running)  # +Inf
    return tuple(counts)


def reference_rollups(end: datetime, hours: float = 1.0) -> list[EvaluationRollup]:
    """The reference workload in 15 s intervals, the last one ending exactly at `end`."""
    intervals = round(hours * 3600 / INTERVAL_SECONDS)
    rollups: list[EvaluationRollup] = []
    for index in range(intervals, 0, -1):
        start = end - timedelta(seconds=index * INTERVAL_SECONDS)
        for spec in _WORKLOAD:
            rollups.append(
                EvaluationRollup(
                    interval_start=start,
                    interval_seconds=INTERVAL_SECONDS,
                    environment=spec.environment,
                    flag=spec.flag,
                    variant=spec.variant,
                    reason=spec.reason,
                    evaluations=spec.evaluations,
                    errors=spec.errors,
                    latency_sum=sum(_OBSERVED[b] * n for b, n in spec.latency.items()),
                    latency_count=sum(spec.latency.values()),
                    latency_buckets=_cumulative_buckets(spec.latency),
                )
            )
    return rollups
