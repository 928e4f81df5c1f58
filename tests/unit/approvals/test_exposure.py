"""Which changes wait for a second person: the ones that reach more traffic."""

from __future__ import annotations

import pytest

from app.approvals.model import raises_exposure
from app.flags.model import FlagState
from app.rollout.action_model import Transition

R, D, E = FlagState.ROLLOUT, FlagState.DISABLED, FlagState.ENABLED


@pytest.mark.parametrize(
    ("start", "end", "up"),
    [
        ((R, 25.0), (R, 50.0), True),  # an advance
        ((D, 0.0), (R, 5.0), True),  # the first step of a disabled flag
        ((D, 30.0), (R, 30.0), True),  # a restore of a kill: disabled reaches nobody
        ((R, 50.0), (E, 100.0), True),
        ((R, 50.0), (R, 25.0), False),  # a rollback
        ((R, 50.0), (D, 0.0), False),  # a kill
        ((E, 100.0), (R, 100.0), False),  # same exposure: nothing more reached
        ((R, 10.0), (R, 10.0), False),
    ],
)
def test_only_a_change_that_reaches_more_traffic_waits(start, end, up):
    assert raises_exposure(Transition("f", start[0], start[1], end[0], end[1])) is up
