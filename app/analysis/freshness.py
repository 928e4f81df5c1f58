"""How old the newest sample is: one computation of the data age every view shows."""

from __future__ import annotations

from datetime import datetime

__all__ = ["data_age_seconds"]


def data_age_seconds(newest_sample: datetime | None, at: datetime) -> float | None:
    """Seconds from the newest sample to `at`, never negative (a sample stamped ahead of
    this clock is fresh); None when there is no sample."""
    if newest_sample is None:
        return None
    return max(0.0, (at - newest_sample).total_seconds())
