"""The canary verdict over the metrics sources: ask the first source that answers for
canary and stable (track=canary, track=stable) requests, errors and p99 latency, and judge
them (`app.analysis.canary`). One function, `load_canary`, for the Canary page, the
`canary` command and the autopilot's canary gate.

With no source answering, the verdict is inconclusive and the source is `"none"`; each
source that did not answer is named in `notices`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from app.analysis.canary import (
    CanaryPolicy,
    CanaryReport,
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
from queries.source import first_answer

__all__ = [
    "BASELINE_TRACK",
    "CANARY_TRACK",
    "LATENCY_QUANTILE",
    "CanaryAnalysis",
    "judge_canary",
    "latency_step",
    "load_canary",
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
