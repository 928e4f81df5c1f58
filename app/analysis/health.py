"""Whether a flag looks healthy from its evaluation metrics, and why not."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Health",
    "HealthReport",
    "HealthThresholds",
    "error_ratio",
    "flag_health",
    "health_report",
]


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


@dataclass(frozen=True)
class HealthReport:
    """A flag's health and the reasons it is not healthy, worst first ('errors 6.67 %
    > 5 %', 'p99 310 ms > 250 ms', 'treatment worse than control, p < 0.01')."""

    health: Health
    reasons: tuple[str, ...] = ()

    @property
    def why(self) -> str:
        return " · ".join(self.reasons)


def _percent(ratio: float) -> str:
    return f"{100 * ratio:.2f} %"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.4g} ms"


def health_report(
    evaluations_per_second: float,
    error_rate: float | None,
    p99_seconds: float | None,
    thresholds: HealthThresholds,
    worse: str = "",
) -> HealthReport:
    """Unhealthy or degraded when the error ratio or the p99 latency crosses its
    threshold (strictly above; the worse wins), degraded at least while the treatment is
    proven worse than the control (`worse`: the words saying so,
    `app.evidence.comparison`); no data when nothing was evaluated. Every crossed
    threshold is a reason."""
    if evaluations_per_second <= 0 or error_rate is None:
        return HealthReport(Health.NO_DATA)
    p99 = p99_seconds or 0.0
    health = Health.HEALTHY
    reasons: list[str] = []
    if error_rate > thresholds.error_rate_unhealthy:
        health = Health.UNHEALTHY
        reasons.append(
            f"errors {_percent(error_rate)} > {100 * thresholds.error_rate_unhealthy:g} %"
        )
    elif error_rate > thresholds.error_rate_degraded:
        health = Health.DEGRADED
        reasons.append(
            f"errors {_percent(error_rate)} > {100 * thresholds.error_rate_degraded:g} %"
        )
    if p99 > thresholds.p99_unhealthy_seconds:
        health = Health.UNHEALTHY
        reasons.append(f"p99 {_ms(p99)} > {_ms(thresholds.p99_unhealthy_seconds)}")
    elif p99 > thresholds.p99_degraded_seconds:
        health = Health.UNHEALTHY if health is Health.UNHEALTHY else Health.DEGRADED
        reasons.append(f"p99 {_ms(p99)} > {_ms(thresholds.p99_degraded_seconds)}")
    if worse:
        if health is Health.HEALTHY:
            health = Health.DEGRADED
        reasons.append(worse)
    return HealthReport(health, tuple(reasons))


def flag_health(
    evaluations_per_second: float,
    error_rate: float | None,
    p99_seconds: float | None,
    thresholds: HealthThresholds,
) -> Health:
    """The health alone (see `health_report`)."""
    return health_report(evaluations_per_second, error_rate, p99_seconds, thresholds).health
