"""The overview table as the screen shows it: one display row per flag (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from app.services.overview import FlagRow
from app.text import (
    HEALTH_BADGES,
    flag_detail_url,
    format_age,
    format_change,
    format_error_rate,
    format_latency,
    format_rate,
    format_split,
)

__all__ = ["FLAG_LINK_TEXT", "overview_display_frame", "why_text"]

#: `display_text` of the Flag link column: the key, read back from the link's URL
FLAG_LINK_TEXT = r"flag=([^&]*)$"


def why_text(row: FlagRow, now: datetime) -> str:
    """'mitigated 12 min ago' for a flag killed or rolled back on evidence that its
    treatment was worse; 'treatment out 12 min ago' when no evidence said so, and, if its
    errors go on without the treatment, that they are not the flag's; then every reason
    it is not healthy; a read-only flag says so last."""
    locked = (f"read-only: {row.read_only}",) if row.read_only else ()
    if row.mitigated_at is not None:
        mitigated = f"mitigated {format_age((now - row.mitigated_at).total_seconds())} ago"
        return " · ".join((mitigated, *row.reasons, *locked))
    if row.withdrawn_at is not None:
        out = f"treatment out {format_age((now - row.withdrawn_at).total_seconds())} ago"
        if row.reasons:
            out += ": the errors go on without it, they are not the flag's"
        return " · ".join((out, *row.reasons, *locked))
    return " · ".join((*row.reasons, *locked))


def last_change_text(row: FlagRow, now: datetime) -> str:
    """'12 min ago · alice · 25 → 50 %', or for a change made in the flag server itself
    '3 min ago · changed in Unleash by olga: rollout 5 % → 25 %'; a dash for none."""
    change = row.last_change
    if change is None:
        return "–"
    if change.summary:
        return f"{format_age((now - change.at).total_seconds())} ago · {change.summary}"
    return format_change(change.at, change.actor, change.from_percentage, change.to_percentage, now)


def overview_display_frame(
    rows: Sequence[FlagRow],
    now: datetime,
    environment: str,
    requests: Mapping[str, str] | None = None,
    autopilot: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Columns: Health, Flag (a link to its detail), Why, Phase, State, Rollout %,
    Evaluations, Trend, Variant split, Errors, p99, Last change — numbers already
    formatted for reading. With `requests` (flag → its pending change request's marker,
    when any is pending), a Request column holds each flag's marker ('' for none); with
    `autopilot` (flag → what its rollout plan does next, when any flag has one), an
    Autopilot column after Why ('' for a flag without a plan)."""
    frame = pd.DataFrame(
        {
            "Health": [HEALTH_BADGES[r.health] for r in rows],
            "Flag": [flag_detail_url(environment, r.flag) for r in rows],
            "Why": [why_text(r, now) for r in rows],
            "Phase": [str(r.phase) if r.phase is not None else "–" for r in rows],
            "State": [f"🔒 {r.state}" if r.read_only else str(r.state) for r in rows],
            "Rollout %": [r.percentage for r in rows],
            "Evaluations": [format_rate(r.evaluations_per_second) for r in rows],
            "Trend": [list(r.sparkline) for r in rows],
            "Variant split": [format_split(r.variants) for r in rows],
            "Errors": [format_error_rate(r.error_rate) for r in rows],
            "p99": [format_latency(r.p99_seconds) for r in rows],
            "Last change": [last_change_text(r, now) for r in rows],
        }
    )
    if requests is not None:
        frame.insert(
            list(frame.columns).index("Rollout %") + 1,
            "Request",
            [requests.get(r.flag, "") for r in rows],
        )
    if autopilot is not None:
        frame.insert(
            list(frame.columns).index("Why") + 1,
            "Autopilot",
            [autopilot.get(r.flag, "") for r in rows],
        )
    return frame
