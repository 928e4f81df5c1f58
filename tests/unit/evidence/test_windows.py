"""The windows a gate judges, cut from slots on one grid."""

import pytest

from app.evidence.sequential import Arm, WindowKind
from app.evidence.windows import WindowPlan, gate_windows, slot_end_at_or_before, window_counts

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
