"""Undo within reason: whether a restore may proceed without an admin's override.

Right after a kill or a rollback the guards of the state it left fail by construction
(no soak, no exposure at 0 %): an operator may still put back what a person or the
autopilot changed, as long as the change is recent (`ROLLOUT_UNDO_WINDOW_HOURS`) and
none of its flags moved since. Otherwise the guards decide, and only an admin overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.audit import AuditEntry, Outcome

__all__ = ["DEFAULT_UNDO_WINDOW", "UndoVerdict", "undo_verdict"]

DEFAULT_UNDO_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class UndoVerdict:
    """Whether the restore may proceed without override (`allowed`), and why (`reason`,
    one sentence a person reads in the dialog)."""

    allowed: bool
    reason: str


def undo_verdict(
    group: Sequence[AuditEntry],
    history: Sequence[AuditEntry],
    now: datetime,
    window: timedelta = DEFAULT_UNDO_WINDOW,
) -> UndoVerdict:
    """May the action that wrote `group` (its records, one per flag) be undone without an
    override at `now`? Yes within `window` of it and while no applied record in `history`
    (any records, any order) changed one of its flags after it."""
    first = group[0]
    age = now - first.at
    limit = _duration(window)
    if age > window:
        return UndoVerdict(
            False,
            f"#{first.id} was applied {_duration(age)} ago: an undo without override is "
            f"allowed within {limit}",
        )
    mine = {e.id for e in group}
    flags = {e.flag for e in group}
    later = sorted(
        (
            e
            for e in history
            if e.flag in flags
            and e.id not in mine
            and e.outcome is Outcome.APPLIED
            and e.at > first.at
        ),
        key=lambda e: e.at,
    )
    if later:
        moved = later[0]
        return UndoVerdict(
            False,
            f"{moved.flag} moved since #{first.id}: #{moved.id} by {moved.actor} at "
            f"{moved.at.astimezone(UTC):%H:%M} UTC, {moved.from_text} → {moved.to_text}",
        )
    unmoved = (
        f"{first.flag} has not moved since"
        if len(flags) == 1
        else f"none of its {len(flags)} flags has moved since"
    )
    return UndoVerdict(
        True,
        f"undoes #{first.id} by {first.actor} {_duration(age)} ago (within {limit}) and {unmoved}",
    )


def _duration(span: timedelta) -> str:
    """Whole units, rounded down: '40 s', '3 min', '24 h', '25 h 30 min' (app.text's
    format_duration; not imported: app.text sits above the rollout package)."""
    whole = int(max(0.0, span.total_seconds()))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"
