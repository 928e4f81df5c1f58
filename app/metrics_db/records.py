"""Plain records the metrics database stores, shared by writers (simulator, tests).

`LATENCY_BUCKETS` are the upper bounds of the evaluation-latency histogram; the
reference evaluator's Prometheus histogram and the SQL roll-ups use the same ones,
so both sources compute the same quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LATENCY_BUCKETS", "REQUEST_LATENCY_BUCKETS", "EvaluationRollup", "RequestRollup"]

#: Upper bounds (seconds) of the latency histogram; +Inf is implied after the last.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


@dataclass(frozen=True)
class EvaluationRollup:
    """Evaluations of one flag/variant/reason in one environment over one interval.

    `latency_buckets` holds cumulative counts, one per `LATENCY_BUCKETS` bound plus a
    last one for +Inf (so it equals `latency_count`), exactly like Prometheus's `le`.
    """

    interval_start: datetime
    interval_seconds: float
    environment: str
    flag: str
    variant: str
    reason: str
    evaluations: int
    errors: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_buckets: tuple[int, ...] = ()
    #: empty for roll-ups written here; where a copied one comes from (`unleash:<app>`)
    origin: str = ""

    @property
    def interval_end(self) -> datetime:
        return self.interval_start + timedelta(seconds=self.interval_seconds)


#: Upper bounds (seconds) of the HTTP request latency histogram (canary analysis).
REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


@dataclass(frozen=True)
class RequestRollup:
    """HTTP requests of one track (`canary` / `stable`) in one environment over one
    interval; `latency_buckets` cumulative per `REQUEST_LATENCY_BUCKETS` plus +Inf."""

    interval_start: datetime
    interval_seconds: float
    environment: str
    track: str
    requests: int
    errors: int
    latency_sum: float
    latency_count: int
    latency_buckets: tuple[int, ...]

    @property
    def interval_end(self) -> datetime:
        return self.interval_start + timedelta(seconds=self.interval_seconds)
