"""Where the canary's tolerance lies, and since when the canary has been beyond it.

Pure rules for the Canary page (no I/O):

- **Tolerance lines**: the highest canary value the judge of `app.analysis.canary`
  tolerates: for the error ratio `max(baseline * (1 + tolerance), baseline + floor)`,
  for the p99 latency `median(baseline p99s) * (1 + latency tolerance)`.
- **Failing since** (the definition chosen): the start of the newest unbroken run of
  latency steps, ending at the newest step, in which the canary's p99 is above the p99
  tolerance line. The judge compares the whole window; a run that began at the window's
  first step may have begun earlier (`since_window_start`). The error ratio is counted
  over the whole window only (no per-step counts), so when only the error ratio fails
  the canary has been failing for at least the window.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.analysis.canary import CanaryPolicy

__all__ = [
    "FailingSince",
    "error_ratio_limit",
    "failing_since",
    "latency_limit",
]


def error_ratio_limit(baseline_ratio: float, policy: CanaryPolicy) -> float | None:
    """The highest tolerated canary error ratio; None when the baseline has no data."""
    if not math.isfinite(baseline_ratio):
        return None
    return max(
        baseline_ratio * (1 + policy.error_ratio_tolerance),
        baseline_ratio + policy.error_ratio_floor,
    )


def latency_limit(baseline_values: Sequence[float], policy: CanaryPolicy) -> float | None:
    """The baseline's median p99 * (1 + latency tolerance); None without baseline data."""
    points = [v for v in baseline_values if math.isfinite(v)]
    if not points:
        return None
    return statistics.median(points) * (1 + policy.latency_tolerance)


@dataclass(frozen=True)
class FailingSince:
    """The start of the newest run of steps beyond tolerance, and whether that run
    reaches back to the first step (so it may have begun before the window)."""

    at: datetime
    since_window_start: bool


def failing_since(
    steps: Sequence[tuple[datetime, float]], limit: float | None
) -> FailingSince | None:
    """Over `(time, canary value)` steps (any order; NaN = no data, which breaks a run),
    the start of the newest unbroken run above `limit` that ends at the newest step;
    None when the newest step is within tolerance, or there is no step or limit."""
    if limit is None or not steps:
        return None
    ordered = sorted(steps)
    start: datetime | None = None
    for at, value in reversed(ordered):
        if not (math.isfinite(value) and value > limit):
            break
        start = at
    if start is None:
        return None
    return FailingSince(start, start == ordered[0][0])
