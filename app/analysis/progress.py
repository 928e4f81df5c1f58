"""Progress of the six technical-debt phases, from the flag configuration alone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.flags.model import FlagConfig

__all__ = ["PhaseProgress", "PhaseStatus", "phase_progress"]


class PhaseStatus(StrEnum):
    NOT_STARTED = "not_started"
    ROLLING_OUT = "rolling_out"
    COMPLETE = "complete"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class PhaseProgress:
    """One phase: `progress` is the mean rollout share of its flags (0..1)."""

    phase: int
    name: str
    planned_week: int
    status: PhaseStatus
    progress: float
    flags: tuple[str, ...]
    flags_complete: int
    blocked_by: tuple[str, ...]


def phase_progress(config: FlagConfig) -> list[PhaseProgress]:
    """Every configured phase (and any phase number only flags mention), in order.

    A phase that is not complete is *blocked* while one of its flags depends on a flag
    of another phase that is not at 100 %: that flag is named in `blocked_by`.
    """
    numbers = {p.number for p in config.phases}
    numbers.update(f.phase for f in config.flags.values() if f.phase is not None)
    result = []
    for number in sorted(numbers):
        members = sorted(k for k, f in config.flags.items() if f.phase == number)
        percentages = [config.flags[k].percentage for k in members]
        progress = sum(percentages) / (100.0 * len(members)) if members else 0.0
        complete = sum(1 for p in percentages if p >= 100.0)
        blocked_by = sorted(
            {
                dep
                for key in members
                for dep in config.flags[key].metadata.dependencies
                if dep not in members and config.flags[dep].percentage < 100.0
            }
        )
        if members and complete == len(members):
            status = PhaseStatus.COMPLETE
        elif blocked_by:
            status = PhaseStatus.BLOCKED
        elif progress > 0:
            status = PhaseStatus.ROLLING_OUT
        else:
            status = PhaseStatus.NOT_STARTED
        phase = config.phase_named(number)
        result.append(
            PhaseProgress(
                phase=number,
                name=phase.name if phase else f"Phase {number}",
                planned_week=phase.planned_week if phase else number,
                status=status,
                progress=progress,
                flags=tuple(members),
                flags_complete=complete,
                blocked_by=tuple(blocked_by),
            )
        )
    return result
