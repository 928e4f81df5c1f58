"""Who changed a flag last, as the conflicts and the action dialog say it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.audit import AuditEntry, AuditLog, Outcome, who_changed
from app.text import format_age

ENV = "production"


@dataclass(frozen=True)
class Edit:
    at: datetime
    label: str


def _log(tmp_path: Path, at: datetime) -> AuditLog:
    audit = AuditLog(None, tmp_path / "journal.jsonl")
    entry = AuditEntry(
        at=at,
        actor="olga",
        action="rollback",
        flag="beta",
        environment=ENV,
        from_state="rollout",
        from_percentage=25.0,
        to_state="rollout",
        to_percentage=10.0,
        reason="errors up",
        outcome=Outcome.PENDING,
    )
    audit.settle(audit.record(entry), Outcome.APPLIED)
    return audit


def test_the_last_applied_record_says_who(tmp_path: Path) -> None:
    audit = _log(tmp_path, datetime(2026, 12, 2, 0, 58, 12, tzinfo=UTC))
    assert (
        who_changed(audit, ENV, "beta")
        == "olga 2026-12-02 00:58:12 UTC rollout 25 % → rollout 10 %"
    )
    assert who_changed(audit, ENV, "gamma") is None  # an edit outside the log


def test_a_newer_edit_in_the_flag_server_wins_with_its_age(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    logged = now - timedelta(hours=3)
    audit = _log(tmp_path, logged)
    newer = Edit(now - timedelta(minutes=12), "changed in Unleash by ted: rollout 5 % → 25 %")
    assert who_changed(audit, ENV, "beta", newer, format_age) == (
        "changed in Unleash by ted: rollout 5 % → 25 % (12 min ago)"
    )
    older = Edit(now - timedelta(hours=5), "changed in Unleash by ted: rollout 1 % → 5 %")
    assert who_changed(audit, ENV, "beta", older, format_age) == (
        f"olga {logged:%Y-%m-%d %H:%M:%S} UTC rollout 25 % → rollout 10 %"
    )
