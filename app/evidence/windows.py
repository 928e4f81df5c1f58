"""Which counts a gate judges: windows over slots of one fixed length (docs/design.md §8).

Counts arrive as **slots**: the increase of each counter over consecutive intervals of
`slot` seconds whose ends are multiples of `slot` since the epoch. Because every reader
(the guard report, the autopilot's tick, a backtest, Flag detail's chart) cuts time on
the same grid, the same window always sums the same slots and gives the same numbers.

A gate looks at several windows at once (`gate_windows`):
- since the step began (from the first whole slot after the change), and since every
  restart point after it (every `restart_every` seconds on the grid, the newest
  `restarts_kept`): a regression that starts hours into a step is judged on counts
  that are not diluted by the healthy hours before it;
- the last `recent_slots` slots: a gross failure is seen at once.
Each window is an e-process of its own (`app.evidence.sequential`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from app.evidence.sequential import Arm, WindowKind

__all__ = [
    "Window",
    "WindowPlan",
    "gate_windows",
    "slot_end_at_or_before",
    "window_counts",
]


@dataclass(frozen=True)
class WindowPlan:
    """How a gate cuts time: slot length, restart interval, restarts kept, recent slots.
    Defaults: 30 s slots (one tick), a restart every 10 min for the last 2 h, the last
    minute as the recent window."""

    slot: float = 30.0
    restart_every: float = 600.0
    restarts_kept: int = 12
    recent_slots: int = 2

    def __post_init__(self) -> None:
        if self.slot <= 0 or self.restart_every < self.slot:
            raise ValueError("slots must be positive and restarts at least one slot apart")
        if self.restarts_kept < 0 or self.recent_slots < 1:
            raise ValueError("restarts kept must be ≥ 0 and recent slots ≥ 1")
        if not math.isclose(self.restart_every / self.slot, round(self.restart_every / self.slot)):
            raise ValueError("the restart interval must be a whole number of slots")

    def restarts_per_day(self) -> float:
        """Windows of kind STEP opened per day: one per restart, plus the steps (a few)."""
        return 86_400 / self.restart_every + 24

    def recent_windows_per_day(self) -> float:
        """Windows of kind RECENT opened per day: one per slot."""
        return 86_400 / self.slot


@dataclass(frozen=True)
class Window:
    """One window's start (epoch seconds, a slot boundary), kind and counts per arm."""

    start: float
    kind: WindowKind
    counts: Mapping[str, Arm]


def slot_end_at_or_before(at: float, slot: float) -> float:
    """The end of the last whole slot at or before `at`."""
    return math.floor(at / slot) * slot


def window_counts(
    slots: Mapping[str, Sequence[tuple[float, Arm]]], start: float, end: float
) -> dict[str, Arm]:
    """Per arm, the sum of the slots ending in (start, end]; an arm with no slot there
    counts 0 of 0."""
    summed = {}
    for arm, series in slots.items():
        bad = total = 0.0
        for slot_end, counts in series:
            if start < slot_end <= end:
                bad += counts.bad
                total += counts.total
        summed[arm] = Arm(bad, total)
    return summed


def gate_windows(
    slots: Mapping[str, Sequence[tuple[float, Arm]]],
    step_began: float,
    now: float,
    plan: WindowPlan,
) -> list[Window]:
    """The windows a gate judges at `now` for a step that began at `step_began`, from
    per-arm slots `(slot end, counts)`: since the step, since each kept restart after
    it, and the recent slots (only once the step has lasted that long). Empty before the
    step's first whole slot has ended."""
    end = slot_end_at_or_before(now, plan.slot)
    first = math.ceil(step_began / plan.slot) * plan.slot  # the first whole slot starts
    if end <= first:
        return []
    starts = [first]
    restart = math.ceil((first + plan.slot) / plan.restart_every) * plan.restart_every
    restarts = []
    while restart < end:
        restarts.append(restart)
        restart += plan.restart_every
    starts += restarts[-plan.restarts_kept :] if plan.restarts_kept else []
    sums = {arm: _PrefixSums(series) for arm, series in slots.items()}

    def counted(start: float) -> dict[str, Arm]:
        return {arm: prefix.between(start, end) for arm, prefix in sums.items()}

    windows = [Window(s, WindowKind.STEP, counted(s)) for s in starts]
    recent = end - plan.recent_slots * plan.slot
    if recent >= first:
        windows.append(Window(recent, WindowKind.RECENT, counted(recent)))
    return windows


class _PrefixSums:
    """Running sums of one arm's slots (sorted by their end): any window in O(log n)."""

    def __init__(self, series: Sequence[tuple[float, Arm]]) -> None:
        ordered = sorted(series, key=lambda item: item[0])
        self.ends = [end for end, _ in ordered]
        self.bad = [0.0, *accumulate(counts.bad for _, counts in ordered)]
        self.total = [0.0, *accumulate(counts.total for _, counts in ordered)]

    def between(self, start: float, end: float) -> Arm:
        """The sum of the slots ending in (start, end]."""
        low, high = bisect_right(self.ends, start), bisect_right(self.ends, end)
        total = max(self.total[high] - self.total[low], 0.0)
        return Arm(min(max(self.bad[high] - self.bad[low], 0.0), total), total)
