"""The autopilot's words after a person acts on a planned flag (issue 24): the overview's
cell and Flag detail describe the flag as it is now, not the plan's last move."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from app.autopilot.model import PlanStatus
from app.flags.model import FlagState
from app.rollout.guards import GuardName
from app.services.autopilot import column_text, killed_flag_words, moved_words
from tests.unit.autopilot.test_pages_service import NOW, event, plan

DISABLED, ROLLOUT = FlagState.DISABLED, FlagState.ROLLOUT


def test_a_person_killing_a_flag_the_autopilot_rolled_back_replaces_the_old_news() -> None:
    rolled_back = plan(
        status=PlanStatus.PAUSED,
        status_by="autopilot",
        status_reason="paused: rollback 25 % → 10 %",
        expected_percentage=10.0,
    )
    last = event("rollback", 25.0, 10.0, timedelta(minutes=22))
    # before the kill: the autopilot's rollback is the news
    assert column_text(rolled_back, ROLLOUT, 10.0, None, NOW, last) == (
        "rolled back 25 → 10 % 22 min ago (paused)"
    )
    # after a person killed it: the plan is paused and stale, said so
    assert column_text(rolled_back, DISABLED, 0.0, None, NOW, last) == (
        "plan paused; the flag was changed since to disabled 0 % (the plan left it at rollout 10 %)"
    )


def test_an_active_plan_on_a_moved_flag_is_stale_until_the_next_tick() -> None:
    active = plan(expected_percentage=5.0)
    assert moved_words(active, ROLLOUT, 5.0) == ""
    assert column_text(active, ROLLOUT, 25.0, None, NOW) == (
        "plan stale: the flag was changed since to rollout 25 % (the plan left it at "
        "rollout 5 %); the next tick pauses it"
    )


def test_a_plan_resumed_on_a_killed_flag_says_what_it_waits_for() -> None:
    resumed = plan(expected_state=DISABLED, expected_percentage=0.0)
    words = killed_flag_words(resumed)
    assert words is not None
    assert words.short == "waits for a person to advance it to 1 %"
    assert "exposure gate needs split evaluations" in words.detail
    assert "Advance the flag to 1 % by hand (⏫ Advance)" in words.detail
    assert column_text(resumed, DISABLED, 0.0, None, NOW) == words.short
    # without the exposure gate, nothing stops the autopilot switching it back on
    unexposed = replace(resumed, gates=frozenset({GuardName.DATA_FRESH, GuardName.ERROR_RATE}))
    other = killed_flag_words(unexposed)
    assert other is not None and other.short == "may switch it back on at 1 %"
    assert "To keep it off, pause or abort the plan." in other.detail
    assert killed_flag_words(plan()) is None
    assert killed_flag_words(replace(resumed, status=PlanStatus.PAUSED)) is None


def test_a_row_older_than_what_the_plan_knows_is_not_a_change() -> None:
    """The overview's cached row may still show the step the autopilot just left."""
    rolled_back = plan(
        status=PlanStatus.PAUSED,
        status_by="autopilot",
        status_at=NOW - timedelta(minutes=1),
        expected_percentage=10.0,
    )
    last = event("rollback", 25.0, 10.0, timedelta(minutes=1))
    cached_row_reached = NOW - timedelta(minutes=30)  # the advance to 25 %, before
    assert column_text(rolled_back, ROLLOUT, 25.0, cached_row_reached, NOW, last) == (
        "rolled back 25 → 10 % 60 s ago (paused)"
    )
    killed_after = NOW - timedelta(seconds=10)  # a person's kill, newer than the pause
    assert column_text(rolled_back, DISABLED, 0.0, killed_after, NOW, last).startswith(
        "plan paused; the flag was changed since to disabled 0 %"
    )
