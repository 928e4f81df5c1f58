"""The canary judge on known cases: z-test and Mann-Whitney verdicts, and their combination."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from app.analysis.canary import (
    CanaryPolicy,
    CanaryReport,
    MetricVerdict,
    Verdict,
    judge_error_ratio,
    judge_latency,
    overall,
)
from app.analysis.canary_analysis import judge_canary
from app.services.canary import error_ratio_frame, metric_table, parse_window

POLICY = CanaryPolicy()

CANARY_P99 = [0.110, 0.112, 0.109, 0.113, 0.108, 0.111, 0.115, 0.110, 0.109, 0.112, 0.114, 0.110]
STABLE_P99 = [0.080, 0.081, 0.079, 0.082, 0.078, 0.080, 0.083, 0.080, 0.079, 0.081, 0.080, 0.082]


def test_a_clear_error_regression_fails():
    verdict = judge_error_ratio(1000, 40, 1000, 5, POLICY)
    assert verdict.verdict is Verdict.FAIL
    assert verdict.canary == pytest.approx(0.04)
    assert verdict.baseline == pytest.approx(0.005)
    # pooled p = 45/2000, z = 0.035 / sqrt(p (1 - p) 2/1000)
    assert verdict.statistic == pytest.approx(0.035 / math.sqrt(0.0225 * 0.9775 * 0.002))
    assert verdict.p_value < 0.02


def test_equal_error_ratios_pass():
    verdict = judge_error_ratio(2000, 20, 10000, 100, POLICY)
    assert verdict.verdict is Verdict.PASS
    assert verdict.statistic == pytest.approx(0.0)
    assert verdict.p_value == pytest.approx(0.5)


def test_no_errors_at_all_pass():
    verdict = judge_error_ratio(1000, 0, 1000, 0, POLICY)
    assert verdict.verdict is Verdict.PASS
    assert verdict.p_value == 1.0


def test_too_few_requests_are_inconclusive():
    verdict = judge_error_ratio(80, 8, 400, 4, POLICY)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert verdict.statistic is None and verdict.p_value is None
    assert "too few requests" in verdict.detail


def test_above_tolerance_but_not_significant_is_marginal():
    # 1.6 % vs 1.0 %: well above the 20 % tolerance, too few errors to be sure
    verdict = judge_error_ratio(500, 8, 1000, 10, POLICY)
    assert verdict.p_value > 0.02
    assert verdict.verdict is Verdict.MARGINAL


def test_significant_but_within_tolerance_is_marginal():
    # 10.5 % vs 10 % on a million requests each: certain, but only 5 % worse
    verdict = judge_error_ratio(1_000_000, 105_000, 1_000_000, 100_000, POLICY)
    assert verdict.p_value < 0.02
    assert verdict.verdict is Verdict.MARGINAL


def test_a_narrower_marginal_band_passes_weak_evidence():
    verdict = judge_error_ratio(500, 6, 1000, 10, CanaryPolicy(marginal_p_value=0.2))
    assert verdict.p_value > 0.2
    assert verdict.verdict is Verdict.PASS


def test_clearly_higher_latency_fails():
    verdict = judge_latency(CANARY_P99, STABLE_P99, POLICY)
    assert verdict.verdict is Verdict.FAIL
    assert verdict.statistic == 144.0  # every canary value above every baseline one
    assert verdict.p_value < 0.02
    assert verdict.canary == pytest.approx(0.1105)
    assert verdict.baseline == pytest.approx(0.080)


def test_identical_latency_distributions_pass():
    verdict = judge_latency(STABLE_P99, list(reversed(STABLE_P99)), POLICY)
    assert verdict.verdict is Verdict.PASS
    assert verdict.p_value > 0.4


def test_lower_canary_latency_passes():
    assert judge_latency(STABLE_P99, CANARY_P99, POLICY).verdict is Verdict.PASS


def test_slightly_higher_latency_within_tolerance_is_marginal():
    slightly = [v * 1.05 for v in STABLE_P99]
    verdict = judge_latency(slightly, STABLE_P99, POLICY)
    assert verdict.p_value < 0.02
    assert verdict.verdict is Verdict.MARGINAL


def test_three_intervals_are_inconclusive():
    verdict = judge_latency(CANARY_P99[:3], STABLE_P99[:3], POLICY)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "too few intervals" in verdict.detail


def _metric(verdict: Verdict) -> MetricVerdict:
    return MetricVerdict("m", verdict, 0.0, 0.0, None, None, "")


P, M, F, N = Verdict.PASS, Verdict.MARGINAL, Verdict.FAIL, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((P, P), P),
        ((P, M), M),
        ((M, F), F),
        ((F, N), F),
        ((P, F), F),
        ((M, N), M),
        ((P, N), P),
        ((N, N), N),
        ((), N),
    ],
)
def test_overall_combination(verdicts, expected):
    assert overall([_metric(v) for v in verdicts]) is expected


def test_report_json_is_designs_canary_document():
    report = CanaryReport(
        Verdict.FAIL,
        (
            judge_error_ratio(1000, 40, 1000, 5, POLICY),
            judge_latency([], [], POLICY),
        ),
    )
    document = json.loads(json.dumps(report.as_json(), allow_nan=False))
    assert document["verdict"] == "fail"
    first, second = document["metrics"]
    assert list(first)[:6] == ["name", "verdict", "canary", "baseline", "statistic", "p_value"]
    assert first["verdict"] == "fail"
    assert second["canary"] is None and second["p_value"] is None


def test_judge_canary_reads_the_frames_and_the_table_shows_the_numbers():
    counts = pd.DataFrame(
        {"track": ["canary", "stable"], "requests": [1000.0, 1000.0], "errors": [40.0, 5.0]}
    )
    stamps = pd.date_range("2026-01-01", periods=12, freq="min", tz="UTC")
    latency = pd.DataFrame(
        {
            "track": ["canary"] * 12 + ["stable"] * 12,
            "timestamp": list(stamps) * 2,
            "seconds": CANARY_P99 + STABLE_P99,
        }
    )
    report = judge_canary(counts, latency, POLICY)
    assert report.verdict is Verdict.FAIL
    table = metric_table(report).set_index("Metric")
    assert table.loc["error ratio", "Canary"] == "4.00 %"
    assert table.loc["error ratio", "Baseline"] == "0.50 %"
    assert table.loc["p99 latency", "Canary"] == "110.5 ms"
    assert table.loc["p99 latency", "Statistic"] == "144.00"
    assert table.loc["error ratio", "Verdict"] == "🔴 fail"
    ratios = error_ratio_frame(counts).set_index("track")["error_ratio"]
    assert ratios.to_dict() == pytest.approx({"canary": 0.04, "stable": 0.005})


def test_a_missing_track_is_inconclusive():
    counts = pd.DataFrame({"track": ["stable"], "requests": [5000.0], "errors": [5.0]})
    latency = pd.DataFrame({"track": [], "timestamp": [], "seconds": []})
    report = judge_canary(counts, latency, POLICY)
    assert report.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h", 3600), ("90s", 90), ("3H", 10800), ("7d", 604800)]
)
def test_parse_window(text, seconds):
    assert parse_window(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text",
    ["", "m", "0m", "15", "1.5h", "-1m", "15 minutes", "\u0661\u0665m", "８m"],
)
def test_parse_window_refuses(text):
    with pytest.raises(ValueError):
        parse_window(text)


@pytest.mark.parametrize("text", ["8d", "99999d", "9" * 40 + "d"])
def test_a_window_longer_than_a_week_is_refused_by_name(text):
    """99999d used to be accepted (and 40 digits overflowed timedelta)."""
    with pytest.raises(ValueError, match="at most 7d"):
        parse_window(text)


def test_track_values_are_regex_escaped_then_string_escaped():
    from queries.canary import track_regex

    assert track_regex(["canary", "stable"]) == '"canary|stable"'
    # `a.b` must not match `axb`; the backslash re.escape adds is itself escaped for PromQL
    assert track_regex(["a.b", 'q"t']) == '"a\\\\.b|q\\"t"'
    with pytest.raises(ValueError):
        track_regex([])
