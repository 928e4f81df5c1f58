"""A deterministic HTTP request workload for canary analysis, with known numbers.

15 s intervals. `production` holds a regression: stable 100 requests / 1 error per
interval, canary 20 / 2 and slower. `staging` holds a clean canary: the same error
ratio as stable (1 error every 5 intervals = 0.2 per interval on average) and faster.
Latency observations fall in known buckets of `REQUEST_LATENCY_BUCKETS`, so every
per-step p99 is the linear interpolation computed below.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.metrics_db.records import REQUEST_LATENCY_BUCKETS, RequestRollup
from queries.names import MetricNames

INTERVAL_SECONDS = 15
REGRESSION_ENV = "production"
CLEAN_ENV = "staging"

#: observed value (seconds) used for `latency_sum` for each bucket's upper bound
_OBSERVED = {0.05: 0.04, 0.1: 0.08, 0.2: 0.15, 0.4: 0.3}


@dataclass(frozen=True)
class _Track:
    environment: str
    track: str
    requests: int
    #: errors in interval number i (counted from the workload start)
    errors_every: int  # an interval with errors every N intervals
    errors: int  # errors in such an interval
    latency: dict[float, int]  # bucket upper bound -> observations per interval


_WORKLOAD = (
    _Track(REGRESSION_ENV, "stable", 100, 1, 1, {0.05: 60, 0.1: 38, 0.2: 2}),
    _Track(REGRESSION_ENV, "canary", 20, 1, 2, {0.1: 6, 0.2: 10, 0.4: 4}),
    _Track(CLEAN_ENV, "stable", 100, 1, 1, {0.05: 60, 0.1: 38, 0.2: 2}),
    _Track(CLEAN_ENV, "canary", 20, 5, 1, {0.05: 12, 0.1: 8}),
)

#: production, per interval: requests and errors per track
REGRESSION_PER_INTERVAL = {"stable": (100, 1), "canary": (20, 2)}
#: production p99 of any whole number of intervals: stable 0.1 + 0.1 * (0.99*100 - 98)/2,
#: canary 0.2 + 0.2 * (0.99*20 - 16)/4
REGRESSION_P99 = {"stable": 0.15, "canary": 0.39}


def _cumulative(latency: dict[float, int]) -> tuple[int, ...]:
    counts: list[int] = []
    running = 0
    for bound in REQUEST_LATENCY_BUCKETS:
        running += latency.get(bound, 0)
        counts.append(running)
    counts.append(running)  # +Inf
    return tuple(counts)


def canary_rollups(end: datetime, hours: float = 1.0) -> list[RequestRollup]:
    """Both environments' request roll-ups, the last interval ending exactly at `end`."""
    intervals = round(hours * 3600 / INTERVAL_SECONDS)
    rollups: list[RequestRollup] = []
    for number in range(intervals):
        start = end - timedelta(seconds=(intervals - number) * INTERVAL_SECONDS)
        for spec in _WORKLOAD:
            errors = spec.errors if number % spec.errors_every == 0 else 0
            count = sum(spec.latency.values())
            rollups.append(
                RequestRollup(
                    interval_start=start,
                    interval_seconds=INTERVAL_SECONDS,
                    environment=spec.environment,
                    track=spec.track,
                    requests=spec.requests,
                    errors=errors,
                    latency_sum=sum(_OBSERVED[b] * n for b, n in spec.latency.items()),
                    latency_count=count,
                    latency_buckets=_cumulative(spec.latency),
                )
            )
    return rollups


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _stamp(moment: datetime) -> str:
    seconds = moment.timestamp()
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def openmetrics_from_request_rollups(
    rollups: Iterable[RequestRollup],
    names: MetricNames = MetricNames(),  # noqa: B008 - frozen dataclass, immutable
) -> str:
    """`http_requests_total{track,code,environment}` (code 200 / 500) and the histogram
    `http_request_duration_seconds{track,environment}`, cumulative at each interval end
    (seconds, rising), each series starting at 0 at the first interval's start."""
    by_series: dict[tuple[str, str], list[RequestRollup]] = defaultdict(list)
    for rollup in rollups:
        by_series[(rollup.environment, rollup.track)].append(rollup)
    env_label, track_label = names.environment_label, names.track_label

    lines = [f"# TYPE {names.http_requests.removesuffix('_total')} counter"]
    for (environment, track), series in sorted(by_series.items()):
        series.sort(key=lambda r: r.interval_start)
        for code in ("200", "500"):
            labels = _labels({track_label: track, "code": code, env_label: environment})
            running = 0
            lines.append(f"{names.http_requests}{labels} 0 {_stamp(series[0].interval_start)}")
            for rollup in series:
                failed = rollup.errors
                running += failed if code == "500" else rollup.requests - failed
                lines.append(
                    f"{names.http_requests}{labels} {running} {_stamp(rollup.interval_end)}"
                )

    histogram = names.http_duration
    lines.append(f"# TYPE {histogram} histogram")
    bounds = [repr(float(b)) for b in REQUEST_LATENCY_BUCKETS] + ["+Inf"]
    for (environment, track), series in sorted(by_series.items()):
        base = {track_label: track, env_label: environment}
        totals = [0] * len(bounds)
        total_sum, total_count = 0.0, 0
        points = [(series[0].interval_start, None), *((r.interval_end, r) for r in series)]
        for moment, rollup in points:
            if rollup is not None:
                totals = [a + b for a, b in zip(totals, rollup.latency_buckets, strict=True)]
                total_sum += rollup.latency_sum
                total_count += rollup.latency_count
            stamp = _stamp(moment)
            for bound, cumulative in zip(bounds, totals, strict=True):
                lines.append(
                    f"{histogram}_bucket{_labels({**base, 'le': bound})} {cumulative} {stamp}"
                )
            lines.append(f"{histogram}_sum{_labels(base)} {total_sum!r} {stamp}")
            lines.append(f"{histogram}_count{_labels(base)} {total_count} {stamp}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
