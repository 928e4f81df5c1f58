import pytest

from app.analysis.health import (
    Health,
    HealthReport,
    HealthThresholds,
    error_ratio,
    flag_health,
    health_report,
)

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


# -- why: every crossed threshold is a reason, at its boundary ---------------------------


@pytest.mark.parametrize(
    ("ratio", "p99", "health", "reasons"),
    [
        (0.05, 0.25, Health.DEGRADED, ("errors 5.00 % > 1 %", "p99 250 ms > 50 ms")),
        (0.0501, 0.0, Health.UNHEALTHY, ("errors 5.01 % > 5 %",)),
        (0.064, 0.31, Health.UNHEALTHY, ("errors 6.40 % > 5 %", "p99 310 ms > 250 ms")),
        (0.01, 0.05, Health.HEALTHY, ()),  # exactly at the thresholds: not above
        (0.0101, 0.0, Health.DEGRADED, ("errors 1.01 % > 1 %",)),
        (0.0, 0.0501, Health.DEGRADED, ("p99 50.1 ms > 50 ms",)),
        (0.02, 0.2501, Health.UNHEALTHY, ("errors 2.00 % > 1 %", "p99 250.1 ms > 250 ms")),
    ],
)
def test_the_why_names_each_crossed_threshold(ratio, p99, health, reasons):
    report = health_report(10.0, ratio, p99, THRESHOLDS)
    assert report.health is health
    assert report.reasons == reasons


def test_no_data_has_no_reason():
    assert health_report(0.0, None, None, THRESHOLDS) == HealthReport(Health.NO_DATA, ())


def test_a_treatment_proven_worse_is_never_healthy():
    said = "on − off +0.70 pt (always-valid interval +0.21 pt…+1.40 pt): proven worse"
    report = health_report(10.0, 0.0055, 0.001, THRESHOLDS, said)
    assert report.health is Health.DEGRADED
    assert report.reasons == (said,)
    assert health_report(10.0, 0.0055, 0.001, THRESHOLDS).health is Health.HEALTHY
