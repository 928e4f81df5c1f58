"""The gate over the step, look by look (Flag detail's evidence chart): the estimate and
its always-valid interval since the step began at each look, and the first look at which
the gate fired, which is when the live rule would have acted."""

import numpy as np
import pytest

from app.evidence.gates import GateSettings, difference_path, judge_guardrail
from app.evidence.windows import WindowPlan

SLOT = 30.0
SETTINGS = GateSettings(plan=WindowPlan(slot=SLOT))
BEGAN = 1_800_000_000.0  # on the grid
ENDS = BEGAN + SLOT * np.arange(1, 241)  # two hours of slots
NOW = float(ENDS[-1])


def _arms(regress_from: int | None):
    total = np.full(len(ENDS), 600.0)  # 20 evaluations/s per arm
    base_bad = total * 0.005
    treated_bad = base_bad.copy()
    if regress_from is not None:
        treated_bad[regress_from:] = total[regress_from:] * 0.05
    return (treated_bad, total), (base_bad, total.copy())


def test_a_healthy_step_never_fires_and_its_interval_holds_zero():
    treated, base = _arms(None)
    path = difference_path(ENDS, treated, base, BEGAN, NOW, SETTINGS, limit=0.0)
    assert path is not None and path.fired_at is None
    assert len(path.at) == 120 and path.at[-1] == NOW
    assert np.allclose(path.estimate, 0.0)
    assert (path.low <= 0).all() and (path.high >= 0).all()
    assert (np.diff(path.high - path.low) <= 1e-12).all()  # narrower as counts grow


def test_a_regression_an_hour_in_fires_once_proven_and_the_path_says_when():
    treated, base = _arms(120)  # from the 121st slot on: one hour into the step
    path = difference_path(ENDS, treated, base, BEGAN, NOW, SETTINGS, limit=0.0, looks=240)
    assert path is not None and path.fired_at is not None
    starts = float(ENDS[120])
    assert starts <= path.fired_at <= starts + 5 * 60  # proven within minutes
    # the live rule at that look fires, a slot earlier it does not
    at = path.fired_at
    assert judge_guardrail(ENDS, treated, base, BEGAN, at, SETTINGS, "", limit=0.0).fired
    before = judge_guardrail(ENDS, treated, base, BEGAN, at - SLOT, SETTINGS, "", limit=0.0)
    assert before is not None and not before.fired
    assert path.estimate[-1] == pytest.approx(0.0225)  # half the step at +4.5 points


def test_nothing_to_draw_before_the_first_whole_slot():
    treated, base = _arms(None)
    assert difference_path(ENDS, treated, base, NOW - 10, NOW, SETTINGS, limit=0.0) is None
