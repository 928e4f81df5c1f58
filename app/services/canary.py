"""The Canary page's and the `canary` command's display of a canary analysis (tables,
chart frames, tolerance lines, "failing since") and its window option; the analysis itself
is `app.analysis.canary_analysis.load_canary`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from app.analysis.canary import CanaryPolicy, CanaryReport, MetricVerdict, Verdict
from app.analysis.canary_analysis import BASELINE_TRACK, CANARY_TRACK, CanaryAnalysis
from app.analysis.canary_tolerance import error_ratio_limit, failing_since, latency_limit
from app.audit import AuditEntry
from app.flags.model import FlagDefinition, FlagState
from app.quoting import quoted
from queries.canary import CANARY_COUNT_COLUMNS

__all__ = [
    "TRACK_COLOURS",
    "canary_failing_since",
    "canary_killed_note",
    "error_ratio_frame",
    "error_ratio_tolerance",
    "latency_ms_frame",
    "latency_tolerance",
    "metric_table",
    "parse_window",
    "request_count_table",
    "verdict_badge",
]

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


def latency_ms_frame(latency: pd.DataFrame) -> pd.DataFrame:
    """The p99 per step with an `ms` column (the chart's axis, like its tolerance line
    and the metric table, is in milliseconds)."""
    return latency.assign(ms=latency["seconds"].astype(float) * 1000.0)


def latency_tolerance(latency: pd.DataFrame, policy: CanaryPolicy) -> float | None:
    """The tolerance line of the p99 chart: the baseline's median p99 * (1 + tolerance)."""
    values = latency.loc[latency["track"] == BASELINE_TRACK, "seconds"].astype(float)
    return latency_limit(values.tolist(), policy)


def canary_killed_note(
    flag: FlagDefinition, last_change: AuditEntry | None, window: timedelta, now: datetime
) -> str | None:
    """What the verdict means once the canary's flag is off: 'Canary flag killed at …
    by …: the verdict covers the window before …'; None while the flag serves anyone."""
    if flag.state is not FlagState.DISABLED:
        return None
    if last_change is None or last_change.to_state is not FlagState.DISABLED:
        return (
            f"The canary flag {flag.key} is disabled: the canary serves nobody, so the "
            "verdict judges requests from before it was switched off, if any."
        )
    at = last_change.at
    words = f"Canary flag killed at {at:%Y-%m-%d %H:%M} UTC by {last_change.actor}"
    if now - at >= window:
        return (
            f"{words}: this {_window_words(window)} window starts after the kill, so the "
            "verdict judges requests that still reached the canary after it (from "
            "instances that had not yet loaded the change), not the canary as it ran."
        )
    return (
        f"{words}: the verdict covers the window before the kill (the last "
        f"{_window_words(window)}, from {now - window:%H:%M} UTC); requests to the canary "
        "since the kill come from instances that had not yet loaded it."
    )


def _window_words(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


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
