"""The data gates of a step: what they estimate since the step began, what they prove,
and how the three share a false-action budget."""

import math

import numpy as np
import pytest

from app.evidence.gates import (
    GATES,
    FlagSlots,
    GateSettings,
    GateSlots,
    VariantSlots,
    judge_flag,
    judge_gates,
)
from app.evidence.sequential import WindowKind
from app.evidence.windows import WindowPlan
from queries.names import ErrorsIn

BEGAN = 1_800_000_000.0  # on the grid
NOW = BEGAN + 3600 + 5  # an hour and 5 s later: 120 whole slots
ENDS = BEGAN + 30 * np.arange(1, 121)
SETTINGS = GateSettings()


def _slots(on=(2500, 5), off=(7500, 15), split=None, per_variant=True) -> GateSlots:
    """The hour's counts spread evenly over its slots, one row."""

    def even(total):
        return np.full((1, ENDS.size), total / ENDS.size)

    on_split, off_split = split or (on[0], off[0])
    return GateSlots(
        ENDS,
        even(on[1] + off[1]),
        even(on[0] + off[0]),
        (even(on[1]), even(on[0])) if per_variant else None,
        (even(off[1]), even(off[0])) if per_variant else None,
        (even(on_split), even(on_split + off_split)),
    )


def test_a_healthy_step_is_within_every_limit_and_proves_nothing():
    gates = judge_flag(_slots(), BEGAN, NOW, 0.25, SETTINGS, "since the step began 60 min ago")
    assert gates is not None and gates.window == "since the step began 60 min ago"
    assert gates.error_rate.estimate == pytest.approx(0.002)
    counted = gates.error_rate.counts
    assert (counted.bad, counted.total) == (pytest.approx(20), pytest.approx(10_000))
    assert gates.error_rate.within
    assert gates.treatment_rate is not None and gates.treatment_rate.estimate == 0.002
    assert gates.difference is not None and gates.difference.estimate == pytest.approx(0.0)
    low, high = gates.difference.interval or (0, 0)
    assert low < 0 < high and gates.difference.control is not None
    assert gates.difference.control.bad == pytest.approx(15)
    assert gates.exposure.estimate == pytest.approx(0.25) and gates.exposure.within
    assert not gates.errors_fired and not gates.exposure.fired
    # the windows judged: since the step, the newest 12 restarts, the last minute
    kinds = {gates.error_rate.evidence.kind, gates.exposure.evidence.kind}
    assert kinds <= {WindowKind.STEP, WindowKind.RECENT}


def test_the_three_gates_share_the_budget_and_the_error_gate_shares_its_share():
    limits = SETTINGS.thresholds()
    plan = WindowPlan()
    per_day = GATES * (
        plan.restarts_per_day() * math.exp(-limits.step)
        + plan.recent_windows_per_day() * math.exp(-limits.recent)
    )
    assert per_day == pytest.approx(0.01)
    gates = judge_flag(_slots(), BEGAN, NOW, 0.25, SETTINGS, "")
    assert gates is not None
    # the flag's and the treatment's rates: two e-processes, each at half the gate's share
    assert gates.error_rate.evidence.threshold - limits.of(
        gates.error_rate.evidence.kind
    ) == pytest.approx(math.log(2))
    assert gates.exposure.evidence.threshold == pytest.approx(
        limits.of(gates.exposure.evidence.kind)
    )
    alone = judge_flag(_slots(per_variant=False), BEGAN, NOW, 0.25, SETTINGS, "")
    assert alone is not None and alone.treatment_rate is None and alone.difference is None
    assert alone.error_rate.evidence.threshold == pytest.approx(
        limits.of(alone.error_rate.evidence.kind)
    )
    assert gates.difference is not None
    assert gates.difference.alpha == pytest.approx(math.exp(-limits.step))


def test_each_gate_fires_on_what_it_proves():
    broken = judge_flag(_slots(on=(2500, 125), off=(7500, 15)), BEGAN, NOW, 0.25, SETTINGS, "")
    assert broken is not None and broken.errors_fired
    assert broken.treatment_rate is not None and broken.treatment_rate.fired
    assert broken.difference is not None and broken.difference.fired
    skewed = judge_flag(_slots(split=(3500, 6500)), BEGAN, NOW, 0.25, SETTINGS, "")
    assert skewed is not None and skewed.exposure.fired and not skewed.exposure.within
    assert not skewed.errors_fired


def test_a_regression_late_in_the_step_is_proven_in_a_restart_window():
    on_total = np.full((1, ENDS.size), 2500 / 120)
    on_bad = np.where(ENDS > NOW - 600, on_total * 0.05, on_total * 0.002)
    off_total = np.full((1, ENDS.size), 7500 / 120)
    off_bad = off_total * 0.002
    slots = GateSlots(
        ENDS,
        on_bad + off_bad,
        on_total + off_total,
        (on_bad, on_total),
        (off_bad, off_total),
        (on_total, on_total + off_total),
    )
    gates = judge_flag(slots, BEGAN, NOW, 0.25, SETTINGS, "since the step began 60 min ago")
    assert gates is not None and gates.treatment_rate is not None
    assert gates.treatment_rate.fired
    evidence = gates.treatment_rate.evidence
    # the restart 10 min ago holds the regression alone; the hour since the step dilutes it
    assert evidence.kind is WindowKind.STEP and evidence.start == ENDS[-1] - 600
    assert evidence.words == "since 08:50 UTC"
    assert evidence.estimate == pytest.approx(0.05)
    assert gates.treatment_rate.estimate == pytest.approx((0.05 * 20 + 0.002 * 100) / 120)


def test_many_rows_at_once_are_each_rows_judgement():
    healthy, broken = _slots(), _slots(on=(2500, 125))
    both = GateSlots(
        ENDS,
        np.vstack([healthy.failed, broken.failed]),
        np.vstack([healthy.evaluated, broken.evaluated]),
        *(
            (np.vstack([a[0], b[0]]), np.vstack([a[1], b[1]]))
            for a, b in (
                (healthy.treatment, broken.treatment),
                (healthy.control, broken.control),
                (healthy.split, broken.split),
            )
        ),
    )
    rows = judge_gates(both, BEGAN, NOW, 0.25, SETTINGS, "w")
    assert rows == [
        judge_flag(healthy, BEGAN, NOW, 0.25, SETTINGS, "w"),
        judge_flag(broken, BEGAN, NOW, 0.25, SETTINGS, "w"),
    ]


def test_nothing_is_judged_before_the_first_whole_slot():
    assert judge_gates(_slots(), BEGAN, BEGAN + 29, 0.25, SETTINGS, "") == [None]


def test_a_counter_a_moment_ahead_never_counts_more_failures_than_evaluations():
    slots = _slots()
    ahead = GateSlots(ENDS, slots.evaluated * 2, slots.evaluated, None, None, slots.split)
    gates = judge_flag(ahead, BEGAN, NOW, 0.25, SETTINGS, "")
    assert gates is not None and gates.error_rate.estimate == 1.0


def test_a_flags_slots_read_its_failures_where_the_emitter_counts_them():
    ends = np.array([30.0, 60.0])
    on = VariantSlots(np.array([10.0, 10.0]), np.array([1.0, 0.0]), np.array([10.0, 10.0]))
    off = VariantSlots(np.array([30.0, 30.0]), np.array([0.0, 2.0]), np.array([20.0, 30.0]))
    flag = FlagSlots(ends, {"on": on, "off": off}, np.array([5.0, 5.0]))
    assert flag.failures(ErrorsIn.REASON).tolist() == [1.0, 2.0]
    assert flag.failures(ErrorsIn.BOTH).tolist() == [5.0, 5.0]
    assert flag.errors_since(30.0, ErrorsIn.REASON).rate == pytest.approx(2 / 40)
    arms = flag.gate_slots(ErrorsIn.BOTH, "on", "off")
    assert arms.failed.tolist() == [[5.0, 5.0]] and arms.evaluated.tolist() == [[40.0, 40.0]]
    assert arms.treatment is not None and arms.treatment[0].tolist() == [[1.0, 0.0]]
    assert arms.split[1].tolist() == [[30.0, 40.0]]
    counter_only = flag.gate_slots(ErrorsIn.COUNTER, "on", "off")
    assert counter_only.treatment is None and counter_only.control is None
    missing = flag.gate_slots(ErrorsIn.REASON, "treated", "off")  # no such variant yet
    assert missing.treatment is not None and missing.treatment[1].tolist() == [[0.0, 0.0]]
