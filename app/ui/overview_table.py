"""The overview table as the screen shows it: one display row per flag (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from app.services.overview import FlagRow
from app.ui.format import (
    HEALTH_BADGES,
    format_change,
    format_error_rate,
    format_latency,
    format_rate,
    format_split,
)

__all__ = ["overview_display_frame"]


def overview_display_frame(rows: Sequence[FlagRow], now: datetime) -> pd.DataFrame:
    """Columns: Health, Flag, Phase, State, Rollout %, Evaluations, Trend, Variant split,
    Errors, p99, Last change — numbers already formatted for reading."""
    return pd.DataFrame(
        {
            "Health": [HEALTH_BADGES[r.health] for r in rows],
            "Flag": [r.flag for r in rows],
            "Phase": [str(r.phase) if r.phase is not None else "–" for r in rows],
            "State": [str(r.state) for r in rows],
            "Rollout %": [r.percentage for r in rows],
            "Evaluations": [format_rate(r.evaluations_per_second) for r in rows],
            "Trend": [list(r.sparkline) for r in rows],
            "Variant split": [format_split(r.variants) for r in rows],
            "Errors": [format_error_rate(r.error_rate) for r in rows],
            "p99": [format_latency(r.p99_seconds) for r in rows],
            "Last change": [
                format_change(c.at, c.actor, c.from_percentage, c.to_percentage, now)
                if (c := r.last_change)
                else "–"
                for r in rows
            ],
        }
    )
