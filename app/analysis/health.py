"""Whether a flag looks healthy from its evaluation metrics, and why not."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SIGNIFICANCE",
    "Health",
    "HealthReport",
    "HealthThresholds",
    "VariantComparison",
    "compare_variants",
    "error_ratio",
    "flag_health",
    "health_report",
    "normal_upper_tail",
    "two_proportion_greater",
]

#: p below this: the treatment fails significantly more often than the control
SIGNIFICANCE = 0.01


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


def two_proportion_greater(
    errors_a: float, total_a: float, errors_b: float, total_b: float
) -> tuple[float, float]:
    """One-sided pooled two-proportion z-test that a's error ratio exceeds b's: (z, p).
    No spread (both ratios 0 or both 1) gives (0, 1): nothing to conclude."""
    pooled = (errors_a + errors_b) / (total_a + total_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    if spread == 0:
        return 0.0, 1.0
    z = (errors_a / total_a - errors_b / total_b) / spread
    return z, normal_upper_tail(z)


def normal_upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z (scipy's `norm.sf`, without importing scipy,
    which would cost the CLI ~2 s for this one line)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class VariantComparison:
    """The treatment's error ratio against the control's over the same window, with the
    one-sided test behind `worse` (p < `significance`)."""

    treatment: str
    control: str
    treatment_ratio: float
    control_ratio: float
    z: float
    p_value: float
    significance: float = SIGNIFICANCE

    @property
    def worse(self) -> bool:
        return self.p_value < self.significance

    @property
    def words(self) -> str:
        """'treatment 0.90 % vs control 0.20 %: significantly worse, p = 0.0012'."""
        verdict = "significantly worse" if self.worse else "not significantly worse"
        return (
            f"treatment {self.treatment} {100 * self.treatment_ratio:.2f} % vs control "
            f"{self.control} {100 * self.control_ratio:.2f} %: {verdict}, p = {self.p_value:.2g}"
        )


def compare_variants(
    treatment: str,
    treatment_errors: float,
    treatment_total: float,
    control: str,
    control_errors: float,
    control_total: float,
    significance: float = SIGNIFICANCE,
) -> VariantComparison | None:
    """The treatment against the control (counts over one window); None when either
    side has no evaluation."""
    if treatment_total <= 0 or control_total <= 0:
        return None
    z, p = two_proportion_greater(treatment_errors, treatment_total, control_errors, control_total)
    return VariantComparison(
        treatment,
        control,
        treatment_errors / treatment_total,
        control_errors / control_total,
        z,
        p,
        significance,
    )


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
    comparison: VariantComparison | None = None,
) -> HealthReport:
    """Unhealthy or degraded when the error ratio or the p99 latency crosses its
    threshold (strictly above; the worse wins), degraded at least while the treatment
    fails significantly more often than the control; no data when nothing was evaluated.
    Every crossed threshold is a reason."""
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
    if comparison is not None and comparison.worse:
        if health is Health.HEALTHY:
            health = Health.DEGRADED
        reasons.append(f"treatment worse than control, p < {comparison.significance:g}")
    return HealthReport(health, tuple(reasons))


def flag_health(
    evaluations_per_second: float,
    error_rate: float | None,
    p99_seconds: float | None,
    thresholds: HealthThresholds,
) -> Health:
    """The health alone (see `health_report`)."""
    return health_report(evaluations_per_second, error_rate, p99_seconds, thresholds).health
