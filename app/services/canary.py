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
from sqlalchemy import Engine

from app.analysis.canary import (
    CanaryPolicy,
    CanaryReport,
    MetricVerdict,
    Verdict,
    judge_error_ratio,
    judge_latency,
    overall,
)
from queries.canary import (
    CANARY_COUNT_COLUMNS,
    CANARY_LATENCY_COLUMNS,
    CanaryQueries,
)
from queries.frames import empty_frame
from queries.prometheus import PrometheusMetrics
from queries.source import first_answer
from queries.sources import Sources

__all__ = [
    "BASELINE_TRACK",
    "CANARY_TRACK",
    "CanaryAnalysis",
    "canary_sources",
    "error_ratio_frame",
    "judge_canary",
    "latency_step",
    "load_canary",
    "metric_table",
    "parse_window",
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


def parse_window(text: str) -> timedelta:
    """'15m', '1h', '90s', '2d' → timedelta; ValueError for anything else or zero."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"not a duration like 15m or 1h: {text!r}")
    seconds = int(text[:-1]) * units[text[-1]]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def canary_sources(
    prometheus: PrometheusMetrics | None, engine: Engine | None
) -> list[CanaryQueries]:
    """Prometheus first when configured, then the database roll-ups (`Sources.canary`;
    a runtime gives them as `runtime.sources.canary()`)."""
    return Sources(prometheus, engine).canary()


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
