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
from datetime import UTC, datetime
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from app.evidence.sequential import Arm, WindowKind

__all__ = [
    "LONGEST_SPAN",
    "Window",
    "WindowPlan",
    "WindowStarts",
    "first_whole_slot",
    "gate_windows",
    "judged_since",
    "live_since",
    "slot_end_at_or_before",
    "span_words",
    "sum_windows",
    "window_counts",
    "window_starts",
    "window_words",
]

Array = npt.NDArray[np.float64]

#: the longest span a gate judges: a step older than this is judged on its newest day
LONGEST_SPAN = 86_400.0
#: the most slots one question asks for (Prometheus answers at most 11,000 points)
MOST_SLOTS = 10_000


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


def first_whole_slot(began: float, slot: float) -> float:
    """Where the first whole slot at or after `began` starts: a window "since the step
    began" sums the slots from there, never one that holds the step before."""
    return math.ceil(began / slot) * slot


def live_since(step_began: float | None, now: float, span: float, slot: float) -> tuple[float, str]:
    """The live window (the overview's, `status`'s and the health line's): the last `span`
    seconds of whole slots, or since the step began when it began later, so a number
    never mixes the step before a change with the one after it; except in the seconds
    before the step's first whole slot has ended, when the window before is shown and
    its words say so (a flag just moved never reads "no data"). Its start (a slot
    boundary) and its words ('last 5 min', 'since the step began 2 min ago')."""
    end = slot_end_at_or_before(now, slot)
    start = end - span
    if step_began is None:
        return start, f"last {span_words(span)}"
    first = first_whole_slot(step_began, slot)
    if first >= end:  # not one whole slot of the step yet: the window before, said so
        return start, (
            f"last {span_words(span)} (the step began {span_words(now - step_began)} ago; "
            f"judged alone from {_clock_seconds(first + slot)})"
        )
    if first > start:
        return first, f"since the step began {span_words(now - step_began)} ago"
    return start, f"last {span_words(span)}"


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


@dataclass(frozen=True)
class WindowStarts:
    """Where the windows of one look start (epoch seconds, slot boundaries), their kinds,
    and the end of the last whole slot they all run to."""

    starts: tuple[float, ...]
    kinds: tuple[WindowKind, ...]
    end: float

    @property
    def first(self) -> float:
        """The start of the window since the step began."""
        return self.starts[0]


def window_starts(step_began: float, now: float, plan: WindowPlan) -> WindowStarts | None:
    """The windows a gate judges at `now` for a step that began at `step_began`: since
    the step's first whole slot, since each kept restart after it, and the recent slots
    (only once the step has lasted that long). None before the step's first whole slot
    has ended."""
    end = slot_end_at_or_before(now, plan.slot)
    first = first_whole_slot(step_began, plan.slot)
    if end <= first:
        return None
    starts = [first]
    restart = math.ceil((first + plan.slot) / plan.restart_every) * plan.restart_every
    restarts = []
    while restart < end:
        restarts.append(restart)
        restart += plan.restart_every
    starts += restarts[-plan.restarts_kept :] if plan.restarts_kept else []
    kinds = [WindowKind.STEP] * len(starts)
    recent = end - plan.recent_slots * plan.slot
    if recent >= first:
        starts.append(recent)
        kinds.append(WindowKind.RECENT)
    return WindowStarts(tuple(starts), tuple(kinds), end)


def gate_windows(
    slots: Mapping[str, Sequence[tuple[float, Arm]]],
    step_began: float,
    now: float,
    plan: WindowPlan,
) -> list[Window]:
    """The windows of `window_starts` with the counts of each arm, from per-arm slots
    `(slot end, counts)`; empty before the step's first whole slot has ended."""
    cut = window_starts(step_began, now, plan)
    if cut is None:
        return []
    sums = {arm: _PrefixSums(series) for arm, series in slots.items()}
    return [
        Window(start, kind, {arm: prefix.between(start, cut.end) for arm, prefix in sums.items()})
        for start, kind in zip(cut.starts, cut.kinds, strict=True)
    ]


def sum_windows(ends: Array, counts: Array, starts: Sequence[float], end: float) -> Array:
    """The sums of `counts` (shape (..., n), one per slot ending at `ends`, sorted) over
    the slots ending in (start, end] of each start: shape (..., len(starts)). The array
    form of `window_counts`, for many flags or simulated days at once."""
    running = np.concatenate(
        [np.zeros((*counts.shape[:-1], 1)), np.cumsum(counts, axis=-1)], axis=-1
    )
    low = np.searchsorted(ends, np.asarray(starts, dtype=np.float64), side="right")
    high = int(np.searchsorted(ends, end, side="right"))
    return np.asarray(running[..., high : high + 1] - running[..., low], dtype=np.float64)


def judged_since(
    step_began: float | None, now: float, plan: WindowPlan, fallback: float
) -> tuple[float, str]:
    """Where a gate's counts begin and the words naming that window: the step's start
    (`step_began`), or `fallback` seconds before `now` when no change is recorded; a
    step older than `LONGEST_SPAN` (or than `MOST_SLOTS` slots) is judged from a restart
    point on its grid, so a new window opens once per restart interval, not every look."""
    longest = min(LONGEST_SPAN, MOST_SLOTS * plan.slot)
    if step_began is None:
        return now - fallback, f"over the last {span_words(fallback)}"
    if now - step_began <= longest:
        return step_began, f"since the step began {span_words(now - step_began)} ago"
    start = math.ceil((now - longest) / plan.restart_every) * plan.restart_every
    return start, (
        f"since {_clock(start)} (the newest {span_words(now - start)} of a step that began "
        f"{span_words(now - step_began)} ago)"
    )


def window_words(start: float, kind: WindowKind, cut: WindowStarts, since: str) -> str:
    """A window in words: `since` for the window since the step began, 'since 14:10
    UTC' for a restart, 'last minute' for the recent slots."""
    if kind is WindowKind.RECENT:
        return "last minute" if cut.end - start == 60 else f"last {span_words(cut.end - start)}"
    return since if start == cut.first else f"since {_clock(start)}"


def span_words(seconds: float) -> str:
    """'45 s', '42 min', '3 h 5 min', '2 d 4 h' (whole units, rounded down)."""
    whole = int(max(0.0, seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    if whole < 172_800:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _clock_seconds(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, tz=UTC):%H:%M:%S} UTC"


def _clock(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, tz=UTC):%H:%M} UTC"


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
