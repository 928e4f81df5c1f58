"""A change request and the rule of which changes wait for a second person."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.flags.model import FlagState
from app.rollout.action_model import Action, Transition

__all__ = ["ChangeRequest", "RequestStatus", "exposure", "raises_exposure", "same_person"]


class RequestStatus(StrEnum):
    """pending → approved → applied | failed; pending → rejected | cancelled | expired."""

    PENDING = "pending"
    APPROVED = "approved"
    APPLIED = "applied"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self is RequestStatus.PENDING


def exposure(state: FlagState, percentage: float) -> float:
    """The share of traffic a flag in `state` at `percentage` reaches, in percent."""
    if state is FlagState.ENABLED:
        return 100.0
    if state is FlagState.DISABLED:
        return 0.0
    return percentage


def same_person(a: str, b: str) -> bool:
    """Two names of one person: case and surrounding spaces do not make another one."""
    return a.strip().casefold() == b.strip().casefold()


def raises_exposure(transition: Transition) -> bool:
    """Whether `transition` reaches more traffic than before: the direction that waits."""
    before = exposure(transition.from_state, transition.from_percentage)
    return exposure(transition.to_state, transition.to_percentage) > before


@dataclass(frozen=True)
class ChangeRequest:
    """What someone asked for, frozen at request time (the exact transitions, the flag
    versions they start from, the guard report), and what became of it."""

    created_at: datetime
    expires_at: datetime
    requester: str
    environment: str
    action: Action
    reason: str
    transitions: tuple[Transition, ...]
    versions: Mapping[str, str]
    idempotency_key: str
    requester_account: str | None = None  # the OS account of a request from the CLI
    flag: str | None = None
    to_percentage: float | None = None
    override: bool = False
    restore_of: str | None = None
    guards: tuple[Mapping[str, Any], ...] = ()
    status: RequestStatus = RequestStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    detail: str = ""
    id: str = field(default="", compare=False)

    @property
    def diff(self) -> str:
        """`ab_testing: rollout 25 % → rollout 50 %`, one line per flag."""
        return "\n".join(t.diff for t in self.transitions)

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(t.flag for t in self.transitions)

    @property
    def digest(self) -> str:
        """A fingerprint of the content an approver approves: the request's identity, the
        exact transitions and the flag versions they start from."""
        content = {
            "id": self.id,
            "environment": self.environment,
            "action": str(self.action),
            "requester": self.requester,
            "override": self.override,
            "transitions": [transition_json(t) for t in self.transitions],
            "versions": dict(sorted(self.versions.items())),
        }
        text = json.dumps(content, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def is_due(self, now: datetime) -> bool:
        """Pending past its expiry."""
        return self.status is RequestStatus.PENDING and now >= self.expires_at

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": str(self.status),
            "environment": self.environment,
            "action": str(self.action),
            "requester": self.requester,
            "requester_account": self.requester_account,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "reason": self.reason,
            "override": self.override,
            "changes": [transition_json(t) for t in self.transitions],
            "versions": dict(self.versions),
            "guards": [dict(g) for g in self.guards],
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "comment": self.comment,
            "detail": self.detail,
            "digest": self.digest,
        }


def transition_json(t: Transition) -> dict[str, Any]:
    return {
        "flag": t.flag,
        "from_state": str(t.from_state),
        "from_percentage": t.from_percentage,
        "to_state": str(t.to_state),
        "to_percentage": t.to_percentage,
    }


def transition_from_json(document: Mapping[str, Any]) -> Transition:
    return Transition(
        str(document["flag"]),
        FlagState(document["from_state"]),
        float(document["from_percentage"]),
        FlagState(document["to_state"]),
        float(document["to_percentage"]),
    )
