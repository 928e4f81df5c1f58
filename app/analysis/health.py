"""Whether a flag looks healthy from its evaluation metrics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Health", "HealthThresholds", "error_ratio", "flag_health"]


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    NO_DATA = "no_data"

    @property
    def severity(self) -> int:
        """Sort key: the worst first (unhealthy 0 … no data 3)."""
        return (Health.UNHEALTHY, Health.DEGRADED, Health.NO_DATA, Health.HEALTHY).index(self)


@dataclass(frozen=True)
class HealthThresholds:
    error_rate_degraded: float = 0.01
    error_rate_unhealthy: float = 0.05
    p99_degraded_seconds: float = 0.05
    p99_unhealthy_seconds: float = 0.25


def error_ratio(evaluations_per_second: float, errors_per_second: float) -> float | None:
    """Failed evaluations over all evaluations; None when nothing was evaluated."""
    if evaluations_per_second <= 0:
        return None
    return min(1.0, errors_per_second / evaluations_per_second)


def flag_health(
    evaluations_per_second: float,
    error_rate: float | None,
    p99_seconds: float | None,
    thresholds: HealthThresholds,
) -> Health:
    """Unhealthy or degraded when the error ratio or the p99 latency crosses its
    threshold (the worse of the two wins); no data when nothing was evaluated."""
    if evaluations_per_second <= 0 or error_rate is None:
        return Health.NO_DATA
    p99 = p99_seconds or 0.0
    if error_rate > thresholds.error_rate_unhealthy or p99 > thresholds.p99_unhealthy_seconds:
        return Health.UNHEALTHY
    if error_rate > thresholds.error_rate_degraded or p99 > thresholds.p99_degraded_seconds:
        return Health.DEGRADED
    return Health.HEALTHY
