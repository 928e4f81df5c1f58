"""Undo within reason: a restore proceeds without an admin's override while the change it
undoes is recent enough and its flags have not moved since."""

from datetime import UTC, datetime, timedelta

from app.audit import AuditEntry, Outcome, RecordedAction
from app.flags.model import FlagState
from app.rollout.undo import undo_verdict

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def _entry(
    id_: str, flag: str, at: datetime, action=RecordedAction.KILL, actor="olga", pct=25.0
) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor=actor,
        action=action,
        flag=flag,
        environment="production",
        from_state=FlagState.ROLLOUT,
        from_percentage=pct,
        to_state=FlagState.DISABLED,
        to_percentage=0.0,
        reason="incident",
        outcome=Outcome.APPLIED,
        id=id_,
    )


def test_a_recent_change_on_an_unmoved_flag_may_be_undone_and_says_why():
    kill = _entry("8", "ab_testing", AT)
    verdict = undo_verdict([kill], [kill], AT + timedelta(minutes=3), DAY)
    assert verdict.allowed
    assert verdict.reason == (
        "undoes #8 by olga 3 min ago (within 24 h) and ab_testing has not moved since"
    )


def test_an_undo_after_the_time_limit_needs_an_override_and_says_how_old():
    kill = _entry("8", "ab_testing", AT)
    verdict = undo_verdict([kill], [kill], AT + timedelta(hours=25, minutes=30), DAY)
    assert not verdict.allowed
    assert verdict.reason == (
        "#8 was applied 25 h 30 min ago: an undo without override is allowed within 24 h"
    )


def test_the_limit_itself_is_still_within_reason():
    kill = _entry("8", "ab_testing", AT)
    assert undo_verdict([kill], [kill], AT + DAY, DAY).allowed
    assert not undo_verdict([kill], [kill], AT + DAY + timedelta(seconds=1), DAY).allowed


def test_a_flag_that_moved_since_and_came_back_needs_an_override_naming_the_move():
    kill = _entry("8", "ab_testing", AT)
    moved = _entry("9", "ab_testing", AT + timedelta(minutes=1), RecordedAction.ADVANCE, "ted")
    moved = AuditEntry(
        **{
            **moved.__dict__,
            "from_state": FlagState.DISABLED,
            "from_percentage": 0.0,
            "to_state": FlagState.ROLLOUT,
            "to_percentage": 1.0,
        }
    )
    back = _entry("10", "ab_testing", AT + timedelta(minutes=2), pct=1.0)
    other = _entry("11", "checkout", AT + timedelta(minutes=2))  # another flag: no matter
    verdict = undo_verdict([kill], [back, other, moved, kill], AT + timedelta(minutes=5), DAY)
    assert not verdict.allowed
    assert verdict.reason == (
        "ab_testing moved since #8: #9 by ted at 12:01 UTC, disabled 0 % → rollout 1 %"
    )


def test_records_that_were_not_applied_are_no_move():
    kill = _entry("8", "ab_testing", AT)
    refused = AuditEntry(
        **{
            **_entry("9", "ab_testing", AT + timedelta(minutes=1)).__dict__,
            "outcome": Outcome.REFUSED,
        }
    )
    assert undo_verdict([kill], [refused, kill], AT + timedelta(minutes=2), DAY).allowed


def test_an_emergency_rollback_is_undone_whole_while_none_of_its_flags_moved():
    group = [
        _entry(str(n), flag, AT, RecordedAction.EMERGENCY_ROLLBACK)
        for n, flag in enumerate(("a", "b", "c", "d", "e"), start=9)
    ]
    verdict = undo_verdict(group, group, AT + timedelta(minutes=1), DAY)
    assert verdict.allowed
    assert verdict.reason == (
        "undoes #9 by olga 1 min ago (within 24 h) and none of its 5 flags has moved since"
    )
    later = _entry("20", "c", AT + timedelta(seconds=30), RecordedAction.ADVANCE, "ted")
    refused = undo_verdict(group, [*group, later], AT + timedelta(minutes=1), DAY)
    assert not refused.allowed and refused.reason.startswith("c moved since #9: #20 by ted")
