import pytest

from app.analysis.health import Health, HealthThresholds, error_ratio, flag_health

THRESHOLDS = HealthThresholds(
    error_rate_degraded=0.01,
    error_rate_unhealthy=0.05,
    p99_degraded_seconds=0.05,
    p99_unhealthy_seconds=0.25,
)


@pytest.mark.parametrize(
    ("rate", "errors", "p99", "expected"),
    [
        (10.0, 0.0, 0.001, Health.HEALTHY),
        (10.0, 0.1, 0.001, Health.HEALTHY),  # exactly 1 % is not above the threshold
        (10.0, 0.2, 0.001, Health.DEGRADED),
        (10.0, 0.6, 0.001, Health.UNHEALTHY),
        (10.0, 0.0, 0.06, Health.DEGRADED),
        (10.0, 0.0, 0.3, Health.UNHEALTHY),
        (10.0, 0.2, 0.3, Health.UNHEALTHY),  # the worse signal wins
        (10.0, 0.0, None, Health.HEALTHY),  # no latency histogram: judged on errors
        (0.0, 0.0, None, Health.NO_DATA),
    ],
)
def test_health_follows_thresholds(rate, errors, p99, expected):
    assert flag_health(rate, error_ratio(rate, errors), p99, THRESHOLDS) is expected


def test_error_ratio_is_errors_over_evaluations_and_none_without_traffic():
    assert error_ratio(15 / 15, 1 / 15) == pytest.approx(1 / 15)
    assert error_ratio(0.0, 1.0) is None
    assert error_ratio(1.0, 5.0) == 1.0  # capped: errors counted apart can exceed


def test_severity_orders_worst_first():
    ordered = sorted(Health, key=lambda h: h.severity)
    assert ordered == [Health.UNHEALTHY, Health.DEGRADED, Health.NO_DATA, Health.HEALTHY]
