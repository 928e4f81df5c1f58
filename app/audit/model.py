"""An audit record and what became of it: the values the audit log stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.errors import RolloutError

__all__ = ["AuditEntry", "DuplicateKey", "Outcome", "describe_change"]


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


@dataclass(frozen=True)
class AuditEntry:
    """One action on one flag. `id` is the database id, or `j-…` while it lives only in
    the journal; `outcome` is the newest known outcome."""

    at: datetime
    actor: str
    action: str
    flag: str
    environment: str
    from_state: str
    from_percentage: float
    to_state: str
    to_percentage: float
    reason: str
    outcome: Outcome
    override: bool = False
    idempotency_key: str | None = None
    guards: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "flag": self.flag,
            "environment": self.environment,
            "from": {"state": self.from_state, "percentage": self.from_percentage},
            "to": {"state": self.to_state, "percentage": self.to_percentage},
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
        f"{entry.from_state} {entry.from_percentage:g} % → {entry.to_state} "
        f"{entry.to_percentage:g} %"
    )
