from datetime import UTC, datetime, timedelta

from app.audit import AuditEntry, Outcome, RecordedAction, action_groups
from app.flags.model import FlagState

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _entry(id_: str, flag: str, key: str | None, at=AT, action=RecordedAction.EMERGENCY_ROLLBACK):
    return AuditEntry(
        at=at,
        actor="olga",
        action=action,
        flag=flag,
        environment="production",
        from_state=FlagState.ROLLOUT,
        from_percentage=25.0,
        to_state=FlagState.DISABLED,
        to_percentage=0.0,
        reason="incident",
        outcome=Outcome.APPLIED,
        idempotency_key=key,
        id=id_,
    )


def test_an_emergency_rollbacks_records_are_one_group_in_id_order():
    key = "k" * 32
    emergency = [_entry(str(n), f"f{n}", key if n == 9 else f"{key}/f{n}") for n in (13, 9, 11)]
    kill = _entry("14", "f9", "other", AT + timedelta(minutes=1), RecordedAction.KILL)
    keyless = _entry("15", "f9", None)
    groups = action_groups([*emergency, kill, keyless])
    assert [e.id for e in groups["13"]] == ["9", "11", "13"]
    assert groups["9"] is groups["11"]
    assert [e.id for e in groups["14"]] == ["14"] and [e.id for e in groups["15"]] == ["15"]
