"""Where a change waits for a second person: the interface the actions consult.

`execute_action` asks an `ApprovalGate` whether a plan may only be applied through an
approved change request, and makes one through it; `app.approvals.Approvals` implements
it and `app.runtime` hands it over. The actions never import the approvals.
"""

from __future__ import annotations

from typing import Protocol

from app.audit import AuditEntry
from app.errors import RolloutError
from app.rollout.action_model import ActionPlan, ActionRequest, RequestedChange

__all__ = ["ApprovalGate", "GateUnavailable"]


class GateUnavailable(RolloutError):
    """The gate cannot store a change request now (`app.approvals.ApprovalsUnavailable`):
    nothing is requested or applied."""


class ApprovalGate(Protocol):
    """Where a change waits for a second person (`app.approvals.Approvals`)."""

    def needs_approval(self, plan: ActionPlan) -> bool:
        """Whether `plan` may only be applied through an approved change request."""

    def ticket_problem(self, request: ActionRequest) -> str | None:
        """Why `request.approved_request` does not allow `request` (None: it does)."""

    def open(self, plan: ActionPlan) -> tuple[RequestedChange, tuple[AuditEntry, ...]]:
        """Store `plan` as a change request (the same one again for a reused idempotency
        key) and audit it; GateUnavailable when it cannot be stored."""
