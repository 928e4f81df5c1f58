"""An audit record and what became of it: the values the audit log stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.errors import RolloutError
from app.flags.model import FlagState
from app.recorded import Unrecognised

__all__ = [
    "UNKNOWN_STATE",
    "AuditEntry",
    "DuplicateKey",
    "Outcome",
    "RecordedAction",
    "describe_change",
    "read_state",
    "state_text",
]


class Outcome(StrEnum):
    """What became of an action; `requested` … `expired` are the steps of a change
    request (`app.approvals`) and `recorded` a change to a rollout plan
    (`app.autopilot`): none of these changes a flag itself."""

    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    REFUSED = "refused"
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RECORDED = "recorded"


class RecordedAction(StrEnum):
    """What an audit record records: an action on flags (the values of
    `app.rollout.action_model.Action`) or a change to a rollout plan (`app.autopilot`)."""

    ADVANCE = "advance"
    ROLLBACK = "rollback"
    KILL = "kill"
    EMERGENCY_ROLLBACK = "emergency_rollback"
    RESTORE = "restore"
    PLAN_SET = "plan_set"
    PLAN_PAUSE = "plan_pause"
    PLAN_RESUME = "plan_resume"
    PLAN_ABORT = "plan_abort"


#: how a record stores a state it does not know (an attempt that could not read the flag)
UNKNOWN_STATE = "unknown"


def read_state(stored: str) -> FlagState | None:
    """A stored state as a `FlagState`; None for `unknown` (and any state this version
    does not know)."""
    try:
        return FlagState(stored)
    except ValueError:
        return None


def state_text(state: FlagState | None) -> str:
    """A record's state as stored and shown: 'rollout', or 'unknown' for None."""
    return UNKNOWN_STATE if state is None else str(state)


@dataclass(frozen=True)
class AuditEntry:
    """One action on one flag. `id` is the database id, or `j-…` while it lives only in
    the journal; `outcome` is the newest known outcome. A state is None where the record
    does not know it (an attempt that could not read the flag); an action this version
    does not know, read from an older or newer record, stays `Unrecognised`."""

    at: datetime
    actor: str
    action: RecordedAction | Unrecognised
    flag: str
    environment: str
    from_state: FlagState | None
    from_percentage: float
    to_state: FlagState | None
    to_percentage: float
    reason: str
    outcome: Outcome
    override: bool = False
    idempotency_key: str | None = None
    guards: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""
    detail: str = ""

    @property
    def from_text(self) -> str:
        """'rollout 25 %' (where the flag was)."""
        return f"{state_text(self.from_state)} {self.from_percentage:g} %"

    @property
    def to_text(self) -> str:
        """'disabled 0 %' (where the action meant to leave it)."""
        return f"{state_text(self.to_state)} {self.to_percentage:g} %"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": str(self.action),
            "flag": self.flag,
            "environment": self.environment,
            "from": {"state": state_text(self.from_state), "percentage": self.from_percentage},
            "to": {"state": state_text(self.to_state), "percentage": self.to_percentage},
            "reason": self.reason,
            "outcome": str(self.outcome),
            "override": self.override,
            "guards": self.guards,
            "idempotency_key": self.idempotency_key,
            "detail": self.detail,
        }


class DuplicateKey(RolloutError, RuntimeError):
    """An action with this idempotency key was already recorded: `existing` is it."""

    def __init__(self, existing: AuditEntry) -> None:
        super().__init__(f"idempotency key {existing.idempotency_key} already used")
        self.existing = existing


def describe_change(entry: AuditEntry) -> str:
    """`olga 2026-12-02 00:58:12 UTC rollout 25 % → rollout 10 %`: who changed what, when."""
    return (
        f"{entry.actor} {entry.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
        f"{entry.from_text} → {entry.to_text}"
    )
