"""The windows a gate judges, cut from slots on one grid."""

from datetime import UTC, datetime

import numpy as np
import pytest

from app.evidence.sequential import Arm, WindowKind
from app.evidence.windows import (
    WindowPlan,
    gate_windows,
    judged_since,
    slot_end_at_or_before,
    span_words,
    sum_windows,
    window_counts,
    window_starts,
    window_words,
)

PLAN = WindowPlan(slot=30, restart_every=600, restarts_kept=2, recent_slots=2)


def _slots(start: float, end: float, bad: float = 1, total: float = 100):
    """One slot every 30 s ending in (start, end], each `bad` of `total`."""
    ends = range(int(start) + 30, int(end) + 1, 30)
    return [(float(e), Arm(bad, total)) for e in ends]


def test_a_slot_ends_on_the_grid_at_or_before_a_moment():
    assert slot_end_at_or_before(1_000_000_017.5, 30) == 999_999_990.0
    assert slot_end_at_or_before(60.0, 30) == 60.0


def test_window_counts_sum_the_slots_inside_and_nothing_else():
    slots = {"on": _slots(0, 300), "off": _slots(0, 300, bad=0, total=300)}
    counts = window_counts(slots, 60, 150)  # slots ending 90, 120, 150
    assert counts == {"on": Arm(3, 300), "off": Arm(0, 900)}
    assert window_counts({"on": []}, 0, 100) == {"on": Arm(0, 0)}


def test_a_step_is_judged_from_its_first_whole_slot_then_restarts_and_recent():
    began = 1_000_045.0  # between slot boundaries: the first whole slot starts at 1_000_050
    now = 1_002_417.0  # the last whole slot ends at 1_002_390
    slots = {"on": _slots(999_000, 1_003_000)}
    windows = gate_windows(slots, began, now, PLAN)
    assert [(w.start, w.kind) for w in windows] == [
        (1_000_050.0, WindowKind.STEP),  # since the step
        (1_001_400.0, WindowKind.STEP),  # the two newest restarts on the 10-min grid
        (1_002_000.0, WindowKind.STEP),
        (1_002_330.0, WindowKind.RECENT),  # the last minute
    ]
    assert windows[0].counts["on"] == Arm(78, 7800)  # 1_000_080 … 1_002_390: 78 slots
    assert windows[-1].counts["on"] == Arm(2, 200)


def test_nothing_is_judged_before_the_first_whole_slot_ends():
    # the step began at 95: its first whole slot is 120 … 150
    assert gate_windows({"on": _slots(0, 200)}, 95.0, 149.0, PLAN) == []
    only_step = gate_windows({"on": _slots(0, 200)}, 95.0, 155.0, PLAN)
    assert [(w.start, w.kind) for w in only_step] == [(120.0, WindowKind.STEP)]


def test_windows_per_day_feed_the_thresholds():
    assert WindowPlan().restarts_per_day() == 86_400 / 600 + 24
    assert WindowPlan().recent_windows_per_day() == 2880


@pytest.mark.parametrize(
    "bad",
    [
        {"slot": 0},
        {"slot": 30, "restart_every": 10},
        {"restart_every": 45},
        {"recent_slots": 0},
        {"restarts_kept": -1},
    ],
)
def test_a_window_plan_refuses_values_that_cut_no_grid(bad):
    with pytest.raises(ValueError):
        WindowPlan(**bad)


def test_the_array_form_sums_the_same_windows_for_many_rows_at_once():
    began, now = 1_000_045.0, 1_002_417.0
    series = _slots(999_000, 1_003_000)
    windows = gate_windows({"on": series}, began, now, PLAN)
    cut = window_starts(began, now, PLAN)
    assert cut is not None and list(cut.starts) == [w.start for w in windows]
    assert list(cut.kinds) == [w.kind for w in windows] and cut.end == 1_002_390.0
    ends = np.array([end for end, _ in series])
    counts = np.array([[arm.total for _, arm in series], [arm.bad for _, arm in series]])
    summed = sum_windows(ends, counts, cut.starts, cut.end)
    assert summed.shape == (2, len(windows))
    assert summed[0].tolist() == [w.counts["on"].total for w in windows]
    assert summed[1].tolist() == [w.counts["on"].bad for w in windows]
    assert window_starts(95.0, 149.0, PLAN) is None


def test_a_gate_judges_since_the_step_or_the_last_window_or_the_newest_day():
    plan = WindowPlan()
    now = datetime(2026, 5, 1, 14, 52, tzinfo=UTC).timestamp()
    assert judged_since(now - 2520, now, plan, 900) == (
        now - 2520,
        "since the step began 42 min ago",
    )
    assert judged_since(None, now, plan, 900) == (now - 900, "over the last 15 min")
    start, words = judged_since(now - 3 * 86_400, now, plan, 900)
    assert start == datetime(2026, 4, 30, 15, tzinfo=UTC).timestamp()  # on the 10-min grid
    assert words == "since 15:00 UTC (the newest 23 h 52 min of a step that began 3 d ago)"
    # short slots: at most 10,000 of them (what one Prometheus query returns)
    short = WindowPlan(slot=2, restart_every=600)
    assert judged_since(now - 86_000, now, short, 900)[0] >= now - 20_000


def test_windows_in_words():
    now = datetime(2026, 5, 1, 14, 52, 10, tzinfo=UTC).timestamp()
    cut = window_starts(now - 2520, now, WindowPlan())
    assert cut is not None
    said = [
        window_words(s, k, cut, "since the step began 42 min ago")
        for s, k in zip(cut.starts, cut.kinds, strict=True)
    ]
    assert said[0] == "since the step began 42 min ago"
    assert said[1:3] == ["since 14:20 UTC", "since 14:30 UTC"]
    assert said[-1] == "last minute"
    assert [span_words(s) for s in (45, 119, 2520, 7200, 11_100, 190_000)] == [
        "45 s",
        "119 s",
        "42 min",
        "2 h",
        "3 h 5 min",
        "2 d 4 h",
    ]


def test_the_live_window_is_the_last_span_or_since_the_step_began():
    from app.evidence.windows import live_since

    now = 1_800_000_015.0  # 15 s after a slot end
    end = 1_800_000_000.0
    assert live_since(None, now, 300, 30) == (end - 300, "last 5 min")
    assert live_since(end - 3600, now, 300, 30) == (end - 300, "last 5 min")
    # a step 2 min old: since its first whole slot, never the step before
    began = end - 110
    assert live_since(began, now, 300, 30) == (end - 90, "since the step began 2 min ago")


def test_a_step_younger_than_its_first_whole_slot_shows_the_window_before_and_says_so():
    from app.evidence.windows import live_since

    now = 1_800_000_015.0
    end = 1_800_000_000.0
    start, words = live_since(now - 12, now, 300, 30)
    assert start == end - 300
    assert words == "last 5 min (the step began 12 s ago; judged alone from 08:01:00 UTC)"
