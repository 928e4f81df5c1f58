"""The rollout ladder: the percentages a flag climbs through (`global.rollout_steps`)."""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import RolloutError

__all__ = ["LadderEnd", "next_step", "previous_step"]


class LadderEnd(RolloutError, ValueError):
    """There is no step in that direction (already at 100 %, or already at 0 %)."""


def next_step(current: float, steps: Sequence[float]) -> float:
    """The first step above `current`; raises LadderEnd at or above the last step."""
    above = [step for step in steps if step > current]
    if not above:
        raise LadderEnd(f"already at {current:g} %, the top of the ladder")
    return min(above)


def previous_step(current: float, steps: Sequence[float]) -> float:
    """The last step below `current`, or 0 below the first; raises LadderEnd at 0."""
    if current <= 0:
        raise LadderEnd("already at 0 %")
    below = [step for step in steps if step < current]
    return max(below) if below else 0.0
