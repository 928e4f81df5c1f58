"""What the action buttons say, and the reason-length rule, as pure functions."""

from __future__ import annotations

from app.flags.model import FlagState
from app.rollout.action_model import Action, Transition
from app.rollout.inputs import MAX_REASON_LENGTH
from app.ui.action_dialog import button_label, reason_problem


def _t(flag: str, before: float, after: float) -> Transition:
    state = FlagState.DISABLED if after == 0 else FlagState.ROLLOUT
    return Transition(flag, FlagState.ROLLOUT, before, state, after)


def test_buttons_say_where_they_go():
    assert button_label(Action.ROLLBACK, [_t("a", 5, 1)]) == "Roll back to 1 %"
    assert button_label(Action.ADVANCE, [_t("a", 10, 25)]) == "Advance to 25 %"
    assert button_label(Action.KILL, [_t("a", 10, 0)]) == "Kill (0 %, disabled)"
    kills = [_t("a", 10, 0), _t("b", 5, 0)]
    assert button_label(Action.EMERGENCY, kills, "production") == "Kill 2 flags in production"
    assert button_label(Action.EMERGENCY, kills[:1], "staging") == "Kill 1 flag in staging"
    back = [Transition("a", FlagState.DISABLED, 0, FlagState.ROLLOUT, 25)]
    assert button_label(Action.RESTORE, back) == "Restore a to rollout 25 %"
    assert button_label(Action.RESTORE, back * 3) == "Restore 3 flags to their prior state"


def test_a_reason_over_the_limit_is_refused_with_its_length_never_cut():
    assert reason_problem("x" * MAX_REASON_LENGTH) is None
    assert reason_problem("  fine  ") is None
    problem = reason_problem("x" * 3000)
    assert problem is not None
    assert "3,000 characters long; the limit is 2,000" in problem and "nothing was cut" in problem
