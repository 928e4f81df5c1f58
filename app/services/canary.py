"""The canary analysis: ask the sources, judge the numbers, say what could not be asked.

`load_canary` tries each source in order (Prometheus, then the database roll-ups) and
judges the first that answers; each source that did not is named in `notices`. With
no source answering, the verdict is inconclusive and the source is `"none"`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from app.analysis.canary import (
    CanaryPolicy,
    CanaryReport,
    MetricVerdict,
    Verdict,
    judge_error_ratio,
    judge_latency,
    overall,
)
from app.analysis.canary_tolerance import error_ratio_limit, failing_since, latency_limit
from app.quoting import quoted
from queries.canary import (
    CANARY_COUNT_COLUMNS,
    CANARY_LATENCY_COLUMNS,
    CanaryQueries,
)
from queries.frames import empty_frame
from queries.source import first_answer

__all__ = [
    "BASELINE_TRACK",
    "CANARY_TRACK",
    "TRACK_COLOURS",
    "CanaryAnalysis",
    "canary_failing_since",
    "error_ratio_frame",
    "error_ratio_tolerance",
    "judge_canary",
    "latency_step",
    "latency_tolerance",
    "load_canary",
    "metric_table",
    "parse_window",
    "request_count_table",
    "verdict_badge",
]

CANARY_TRACK = "canary"
BASELINE_TRACK = "stable"
LATENCY_QUANTILE = 0.99


@dataclass(frozen=True)
class CanaryAnalysis:
    """A verdict with the frames it was made from (for the charts) and its provenance."""

    report: CanaryReport
    source: str  # "prometheus" | "sql" | "none"
    at: datetime
    window: timedelta
    counts: pd.DataFrame  # CANARY_COUNT_COLUMNS
    latency: pd.DataFrame  # CANARY_LATENCY_COLUMNS
    newest_sample: datetime | None = None
    notices: tuple[str, ...] = field(default=())

    @property
    def data_age_seconds(self) -> float | None:
        if self.newest_sample is None:
            return None
        return max(0.0, (self.at - self.newest_sample).total_seconds())


def latency_step(window: timedelta) -> timedelta:
    """The latency points' spacing: 15 points per window, never under 60 s (a PromQL
    `rate` needs at least two scrapes per step), in whole seconds."""
    seconds = max(60, int(window.total_seconds()) // 15)
    return timedelta(seconds=seconds)


#: the longest canary window: a canary judged over more than a week judges history
MAX_WINDOW = timedelta(days=7)


def parse_window(text: str) -> timedelta:
    """'15m', '1h', '90s', '2d' → timedelta; ValueError for anything else, zero, or more
    than `MAX_WINDOW`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    digits = text[:-1]
    if len(text) < 2 or text[-1] not in units or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a duration like 15m or 1h: {quoted(text)}")
    if len(digits) > 12 or int(digits) * units[text[-1]] > MAX_WINDOW.total_seconds():
        raise ValueError(f"a window of at most 7d, not {quoted(text)}")
    seconds = int(digits) * units[text[-1]]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {quoted(text)}")
    return timedelta(seconds=seconds)


def judge_canary(counts: pd.DataFrame, latency: pd.DataFrame, policy: CanaryPolicy) -> CanaryReport:
    """The verdict on the error ratio and the p99 latency, canary vs stable (pure)."""
    per_track = {
        str(track): (float(requests), float(errors))
        for track, requests, errors in counts[list(CANARY_COUNT_COLUMNS)].itertuples(index=False)
    }
    canary_requests, canary_errors = per_track.get(CANARY_TRACK, (0.0, 0.0))
    baseline_requests, baseline_errors = per_track.get(BASELINE_TRACK, (0.0, 0.0))
    errors = judge_error_ratio(
        canary_requests, canary_errors, baseline_requests, baseline_errors, policy
    )
    ordered = latency.sort_values("timestamp")
    values = {
        track: [float(v) for v in ordered.loc[ordered["track"] == track, "seconds"]]
        for track in (CANARY_TRACK, BASELINE_TRACK)
    }
    p99 = judge_latency(values[CANARY_TRACK], values[BASELINE_TRACK], policy)
    metrics = (errors, p99)
    return CanaryReport(overall(metrics), metrics)


def load_canary(
    sources: Sequence[CanaryQueries],
    environment: str,
    window: timedelta,
    at: datetime,
    step: timedelta | None = None,
    policy: CanaryPolicy = CanaryPolicy(),  # noqa: B008 - frozen dataclass, immutable
    notices: Sequence[str] = (),
) -> CanaryAnalysis:
    """Canary vs stable over (at - window, at] from the first source that answers.

    Latency points are `step` apart (default `latency_step(window)`), each the p99 over
    its own step, so they are independent samples for the Mann-Whitney test.
    """
    spacing = step or latency_step(window)
    notices = list(notices)
    tracks = (CANARY_TRACK, BASELINE_TRACK)

    def ask(source: CanaryQueries) -> tuple[pd.DataFrame, pd.DataFrame, datetime | None]:
        counts = source.request_counts(environment, window, at, tracks)
        latency = source.latency_series(
            environment,
            at - window + spacing,
            at,
            spacing,
            LATENCY_QUANTILE,
            tracks,
        )
        return counts, latency, source.newest_request_time(environment, at)

    answer = first_answer(sources, ask, notices, "trying the next source.")
    if answer is None:
        notices.append("No metrics source answered: no canary verdict.")
        name, report = "none", CanaryReport(Verdict.INCONCLUSIVE, ())
        counts, latency = empty_frame(CANARY_COUNT_COLUMNS), empty_frame(CANARY_LATENCY_COLUMNS)
        newest = None
    else:
        source, (counts, latency, newest) = answer
        name, report = source.name, judge_canary(counts, latency, policy)
    return CanaryAnalysis(report, name, at, window, counts, latency, newest, tuple(notices))


_VERDICT_BADGES = {
    Verdict.PASS: "🟢 pass",
    Verdict.MARGINAL: "🟠 marginal",
    Verdict.FAIL: "🔴 fail",
    Verdict.INCONCLUSIVE: "⚪ inconclusive",
}


def verdict_badge(verdict: Verdict) -> str:
    return _VERDICT_BADGES[verdict]


def _value_text(metric: MetricVerdict, value: float) -> str:
    if not math.isfinite(value):
        return "–"
    if "latency" in metric.name:
        return f"{1000 * value:.1f} ms"
    return f"{100 * value:.2f} %"


def _number_text(value: float | None, digits: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, digits)


def metric_table(report: CanaryReport) -> pd.DataFrame:
    """One display row per metric: verdict, canary, baseline, statistic, p-value, why."""
    return pd.DataFrame(
        [
            {
                "Metric": m.name,
                "Verdict": verdict_badge(m.verdict),
                "Canary": _value_text(m, m.canary),
                "Baseline": _value_text(m, m.baseline),
                "Statistic": _number_text(m.statistic, ".2f"),
                "p-value": _number_text(m.p_value, ".3g"),
                "Detail": m.detail,
            }
            for m in report.metrics
        ],
        columns=["Metric", "Verdict", "Canary", "Baseline", "Statistic", "p-value", "Detail"],
    )


def error_ratio_frame(counts: pd.DataFrame) -> pd.DataFrame:
    """track, error ratio (0..1) for the bar chart; tracks without requests left out."""
    frame = counts[counts["requests"] > 0]
    return pd.DataFrame(
        {
            "track": frame["track"].astype(str).tolist(),
            "error_ratio": (frame["errors"].astype(float) / frame["requests"].astype(float))
            .astype(float)
            .tolist(),
        }
    )


# --- Display helpers of the Canary page (issue 8 §6) -------------------------------

#: Fixed, colour-blind-safe colours (Okabe-Ito orange and blue): the canary is always
#: orange and the baseline always blue, on every chart and in both themes.
TRACK_COLOURS = {CANARY_TRACK: "#E69F00", BASELINE_TRACK: "#0072B2"}


def request_count_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Track, requests, errors, error ratio as text: one row per track, canary first;
    a track without a row shows 0 requests."""
    per_track = {
        str(track): (int(requests), int(errors))
        for track, requests, errors in counts[list(CANARY_COUNT_COLUMNS)].itertuples(index=False)
    }
    rows = []
    for track in (CANARY_TRACK, BASELINE_TRACK):
        requests, errors = per_track.get(track, (0, 0))
        ratio = f"{100 * errors / requests:.2f} %" if requests else "–"
        rows.append((track, f"{requests:,}", f"{errors:,}", ratio))
    return pd.DataFrame(rows, columns=["Track", "Requests", "Errors", "Error ratio"])


def error_ratio_tolerance(counts: pd.DataFrame, policy: CanaryPolicy) -> float | None:
    """The tolerance line of the error-ratio chart: the highest canary ratio the judge
    tolerates given the baseline's ratio; None without baseline requests."""
    base = counts[(counts["track"] == BASELINE_TRACK) & (counts["requests"] > 0)]
    if base.empty:
        return None
    ratio = float(base["errors"].sum()) / float(base["requests"].sum())
    return error_ratio_limit(ratio, policy)


def latency_tolerance(latency: pd.DataFrame, policy: CanaryPolicy) -> float | None:
    """The tolerance line of the p99 chart: the baseline's median p99 * (1 + tolerance)."""
    values = latency.loc[latency["track"] == BASELINE_TRACK, "seconds"].astype(float)
    return latency_limit(values.tolist(), policy)


def canary_failing_since(analysis: CanaryAnalysis, policy: CanaryPolicy) -> str | None:
    """'Failing since …' for a failing verdict (see `app.analysis.canary_tolerance`);
    None unless the verdict is fail."""
    if analysis.report.verdict is not Verdict.FAIL:
        return None
    window_start = analysis.at - analysis.window
    p99_failed = any(
        m.verdict is Verdict.FAIL and "latency" in m.name for m in analysis.report.metrics
    )
    if p99_failed:
        canary = analysis.latency[analysis.latency["track"] == CANARY_TRACK]
        steps = [
            (pd.Timestamp(at).to_pydatetime(warn=False), float(v))
            for at, v in zip(canary["timestamp"], canary["seconds"], strict=True)
        ]
        found = failing_since(steps, latency_tolerance(analysis.latency, policy))
        if found is not None:
            when = f"{found.at:%Y-%m-%d %H:%M} UTC"
            if found.since_window_start:
                return (
                    f"Failing since at least {when}: the p99 is beyond tolerance over the "
                    "whole window."
                )
            return f"Failing since {when}: the p99 has been beyond tolerance at every step since."
    return (
        f"Failing since at least {window_start:%Y-%m-%d %H:%M} UTC: the error ratio is "
        "judged over the whole window."
    )
