"""Tolerance lines and "failing since" of the Canary page, worked out by hand."""

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from app.analysis.canary import CanaryPolicy, CanaryReport, MetricVerdict, Verdict
from app.analysis.canary_analysis import CanaryAnalysis
from app.analysis.canary_tolerance import (
    FailingSince,
    error_ratio_limit,
    failing_since,
    latency_limit,
)
from app.services.canary import (
    TRACK_COLOURS,
    canary_failing_since,
    error_ratio_tolerance,
    latency_tolerance,
    request_count_table,
)

POLICY = CanaryPolicy()  # +20 % relative, at least +0.1 point; p99 +10 %
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_error_ratio_limit_is_relative_or_the_floor_whichever_is_higher():
    assert error_ratio_limit(0.01, POLICY) == pytest.approx(0.012)  # 1 % * 1.2
    assert error_ratio_limit(0.002, POLICY) == pytest.approx(0.003)  # floor: +0.1 point
    assert error_ratio_limit(0.0, POLICY) == pytest.approx(0.001)
    assert error_ratio_limit(math.nan, POLICY) is None


def test_latency_limit_is_the_baseline_median_plus_the_tolerance():
    assert latency_limit([0.1, 0.2, 0.15, math.nan], POLICY) == pytest.approx(0.165)
    assert latency_limit([], POLICY) is None


def test_failing_since_is_the_start_of_the_newest_run_beyond_the_limit():
    steps = [(_at(0), 0.5), (_at(1), 0.1), (_at(2), 0.3), (_at(3), 0.4), (_at(4), 0.35)]
    assert failing_since(steps, 0.2) == FailingSince(_at(2), since_window_start=False)


def test_failing_since_the_first_step_may_be_older_than_the_window():
    steps = [(_at(2), 0.4), (_at(0), 0.3), (_at(1), 0.3)]  # any order
    assert failing_since(steps, 0.2) == FailingSince(_at(0), since_window_start=True)


def test_not_failing_when_the_newest_step_is_within_tolerance_or_has_no_data():
    assert failing_since([(_at(0), 0.4), (_at(1), 0.1)], 0.2) is None
    assert failing_since([(_at(0), 0.4), (_at(1), math.nan)], 0.2) is None
    assert failing_since([(_at(0), 0.4)], None) is None
    assert failing_since([], 0.2) is None


def _counts(canary: tuple[int, int], stable: tuple[int, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "track": ["canary", "stable"],
            "requests": [canary[0], stable[0]],
            "errors": [canary[1], stable[1]],
        }
    )


def _latency(canary: list[float], stable: list[float]) -> pd.DataFrame:
    rows = [(_at(i), "canary", v) for i, v in enumerate(canary)]
    rows += [(_at(i), "stable", v) for i, v in enumerate(stable)]
    return pd.DataFrame(rows, columns=["timestamp", "track", "seconds"])


def test_the_chart_lines_come_from_the_baseline():
    assert error_ratio_tolerance(_counts((2000, 200), (10000, 100)), POLICY) == pytest.approx(0.012)
    assert error_ratio_tolerance(_counts((2000, 200), (0, 0)), POLICY) is None
    latency = _latency([0.39] * 3, [0.15, 0.15, 0.2])
    assert latency_tolerance(latency, POLICY) == pytest.approx(0.165)


def test_request_counts_per_track_canary_first():
    table = request_count_table(_counts((2000, 200), (10000, 100)).iloc[::-1])
    assert table.to_dict("records") == [
        {"Track": "canary", "Requests": "2,000", "Errors": "200", "Error ratio": "10.00 %"},
        {"Track": "stable", "Requests": "10,000", "Errors": "100", "Error ratio": "1.00 %"},
    ]
    empty = request_count_table(_counts((2000, 200), (10000, 100)).iloc[:0])
    assert list(empty["Requests"]) == ["0", "0"] and list(empty["Error ratio"]) == ["–", "–"]


def test_canary_and_stable_have_two_distinct_fixed_colours():
    assert set(TRACK_COLOURS) == {"canary", "stable"}
    assert TRACK_COLOURS["canary"] != TRACK_COLOURS["stable"]


def _analysis(verdicts: dict[str, Verdict], latency: pd.DataFrame) -> CanaryAnalysis:
    metrics = tuple(
        MetricVerdict(name, v, 0.0, 0.0, None, None, "") for name, v in verdicts.items()
    )
    overall = Verdict.FAIL if Verdict.FAIL in verdicts.values() else Verdict.PASS
    return CanaryAnalysis(
        CanaryReport(overall, metrics),
        "sql",
        _at(15),
        timedelta(minutes=15),
        _counts((0, 0), (0, 0)),
        latency,
    )


def test_failing_since_on_the_page_names_the_first_step_of_the_run():
    latency = _latency([0.1, 0.1, 0.39, 0.39], [0.15] * 4)
    text = canary_failing_since(
        _analysis({"error ratio": Verdict.PASS, "p99 latency": Verdict.FAIL}, latency), POLICY
    )
    assert text is not None and text.startswith("Failing since 2026-03-02 09:02 UTC")


def test_a_canary_failing_on_errors_alone_fails_for_at_least_the_window():
    latency = _latency([0.1] * 4, [0.15] * 4)
    text = canary_failing_since(
        _analysis({"error ratio": Verdict.FAIL, "p99 latency": Verdict.PASS}, latency), POLICY
    )
    assert text == (
        "Failing since at least 2026-03-02 09:00 UTC: the error ratio is judged over the "
        "whole window."
    )


def test_no_failing_since_unless_the_verdict_fails():
    latency = _latency([0.39] * 4, [0.15] * 4)
    assert canary_failing_since(_analysis({"p99 latency": Verdict.PASS}, latency), POLICY) is None
