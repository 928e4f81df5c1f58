"""An audit record's typed fields: what it records, where the flag was and went, and
records written by an older version read back without a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from app.audit import AuditEntry, AuditLog, Outcome, RecordedAction, describe_change
from app.flags.model import FlagState
from app.metrics_db.database import open_database
from app.metrics_db.schema import AuditRecord
from app.recorded import Unrecognised
from app.rollout.action_model import Action

AT = datetime(2026, 12, 2, 0, 58, 12, tzinfo=UTC)


def _row(action: str, from_state: str, to_state: str, key: str) -> dict[str, object]:
    return {
        "at": AT,
        "actor": "olga",
        "action": action,
        "flag": "beta",
        "environment": "production",
        "from_state": from_state,
        "from_percentage": 25.0,
        "to_state": to_state,
        "to_percentage": 10.0,
        "reason": "older version",
        "outcome": "applied",
        "override": False,
        "idempotency_key": key,
        "guards": [{"name": "sample_ratio", "passed": True}],
    }


def test_every_action_is_one_the_audit_records() -> None:
    assert {str(a) for a in Action} <= {str(r) for r in RecordedAction}
    assert all(RecordedAction(a) == a for a in Action)


def test_an_attempt_that_could_not_read_the_flag_records_unknown_states(tmp_path: Path) -> None:
    audit = AuditLog(None, tmp_path / "journal.jsonl")
    entry = AuditEntry(
        at=AT,
        actor="olga",
        action=RecordedAction.ADVANCE,
        flag="beta",
        environment="production",
        from_state=None,
        from_percentage=0.0,
        to_state=None,
        to_percentage=50.0,
        reason="go",
        outcome=Outcome.PENDING,
    )
    recorded = audit.record(entry)
    line = json.loads((tmp_path / "journal.jsonl").read_text())
    assert (line["action"], line["from_state"], line["to_state"]) == (
        "advance",
        "unknown",
        "unknown",
    )
    assert recorded.as_json()["from"] == {"state": "unknown", "percentage": 0.0}
    assert describe_change(recorded).endswith("UTC unknown 0 % → unknown 50 %")
    read = audit.get(recorded.id)
    assert read is not None and (read.action, read.from_state, read.to_state) == (
        RecordedAction.ADVANCE,
        None,
        None,
    )


def test_records_of_an_older_version_read_back_as_stored(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    with engine.begin() as connection:
        connection.execute(
            insert(AuditRecord),
            [
                _row("rollback", "rollout", "rollout", "known"),
                _row("promote", "unknown", "archived", "older"),
            ],
        )
    audit = AuditLog(engine, tmp_path / "journal.jsonl")
    known = audit.find_key("known")
    assert known is not None
    assert type(known.action) is RecordedAction and known.action is RecordedAction.ROLLBACK
    assert (known.from_state, known.to_state) == (FlagState.ROLLOUT, FlagState.ROLLOUT)
    assert known.as_json()["from"] == {"state": "rollout", "percentage": 25.0}
    older = audit.find_key("older")
    assert older is not None
    assert isinstance(older.action, Unrecognised) and older.action == "promote"
    assert (older.from_state, older.to_state) == (None, None)
    document = older.as_json()
    assert (document["action"], document["from"]["state"], document["to"]["state"]) == (
        "promote",
        "unknown",
        "unknown",
    )
    assert document["guards"] == [{"name": "sample_ratio", "passed": True}]
    assert [e.idempotency_key for e in audit.entries("beta")] == ["older", "known"]
    line = {"type": "record", "id": "j-1", **_row("promote", "rollout", "gone", "journal")}
    (tmp_path / "journal.jsonl").write_text(json.dumps(line, default=str) + "\n")
    journaled = audit.get("j-1")
    assert journaled is not None and isinstance(journaled.action, Unrecognised)
    assert (journaled.action, journaled.from_state, journaled.to_state) == (
        "promote",
        FlagState.ROLLOUT,
        None,
    )
