"""The values of an action: what someone asked for (`ActionRequest`), the exact change
it makes (`Transition`, `ActionPlan`), what it did (`ActionResult`), and its refusals."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from app.audit import AuditEntry
from app.errors import RolloutError
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagDefinition, FlagState
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity
from app.rollout.undo import UndoVerdict

__all__ = [
    "Action",
    "ActionConflict",
    "ActionPlan",
    "ActionRefused",
    "ActionRequest",
    "ActionResult",
    "EvidenceBefore",
    "FlagOutcome",
    "FlagOutcomeStatus",
    "GuardCheck",
    "InvalidRequest",
    "RequestedChange",
    "Transition",
]


#: Evaluates the guards of advancing `flag` in `snapshot` (gathers metrics; never raises).
GuardCheck = Callable[[FlagSnapshot, str], list[GuardResult]]
#: The guards of the state a recorded change left, judged over the window before it:
#: (the flags now, the record) → the guard report of the flag as the record found it.
EvidenceBefore = Callable[[FlagSnapshot, AuditEntry], list[GuardResult]]


class Action(StrEnum):
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    KILL = "kill"
    EMERGENCY = "emergency_rollback"
    RESTORE = "restore"


class InvalidRequest(RolloutError, ValueError):
    """The request itself is wrong (unknown flag, bad percentage, empty reason...)."""


class ActionRefused(InvalidRequest):
    """The request is well formed but cannot be done (a restore of a record that was
    not applied): exit 1."""


class ActionConflict(InvalidRequest):
    """A flag is no longer where the request expects it (a restore after a later
    change): exit 3, with the fresh snapshot."""

    def __init__(self, message: str, fresh: FlagSnapshot) -> None:
        super().__init__(message)
        self.fresh = fresh


@dataclass(frozen=True)
class ActionRequest:
    """What someone asked for. `expected_versions` are the flag versions the asker saw
    (a page passes what it displayed); None means "as read now" (the CLI).
    `confirmed` are the transitions the person confirmed in a dialog: exactly these are
    applied, or the request is refused as a conflict. `restore_of` is the audit id a
    restore reverts. `approved_request` is the change request whose approval this
    request applies (`app.approvals`). `judged` are the gates the requester judged before
    asking (the autopilot's evidence for a rollback or kill, which measures nothing
    itself): recorded in the audit record, never a reason to refuse."""

    action: Action
    environment: str
    reason: str
    identity: Identity
    flag: str | None = None
    to_percentage: float | None = None
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    dry_run: bool = False
    override_guards: bool = False
    expected_versions: Mapping[str, str] | None = None
    confirmed: tuple[Transition, ...] | None = None
    restore_of: str | None = None
    approved_request: str | None = None
    judged: tuple[GuardResult, ...] = ()


@dataclass(frozen=True)
class Transition:
    flag: str
    from_state: FlagState
    from_percentage: float
    to_state: FlagState
    to_percentage: float

    @property
    def diff(self) -> str:
        """`flag: rollout 25 % → rollout 50 %`."""
        return (
            f"{self.flag}: {self.from_state} {self.from_percentage:g} % → "
            f"{self.to_state} {self.to_percentage:g} %"
        )

    def starts_from(self, flag: FlagDefinition) -> bool:
        """Whether `flag` is (still) in this transition's `from` state."""
        return flag.state is self.from_state and flag.percentage == self.from_percentage


@dataclass(frozen=True)
class ActionPlan:
    """The exact change an action would make, with the guard report (an advance, or a
    restore that goes up). `undo` is a restore's verdict on undoing within reason: when
    allowed, its guards are the evidence from before the change it undoes, shown as
    warnings, and failing ones do not refuse it."""

    request: ActionRequest
    snapshot: FlagSnapshot
    transitions: tuple[Transition, ...]
    guards: tuple[GuardResult, ...] = ()
    #: flags an emergency rollback leaves alone because the backend shows them read-only,
    #: each with the reason
    skipped: Mapping[str, str] = field(default_factory=dict)
    #: no metrics source answered the guards (their freshness measured nothing): a
    #: refusal is then "unavailable" (exit 4), not "refused"
    metrics_unavailable: bool = False
    undo: UndoVerdict | None = None

    @property
    def guards_passed(self) -> bool:
        return all(guard.passed for guard in self.guards)

    @property
    def may_proceed(self) -> bool:
        """Whether the plan may be applied without an override: its guards pass, or it
        is an undo within reason (`app.rollout.undo`)."""
        return self.guards_passed or (self.undo is not None and self.undo.allowed)


class FlagOutcomeStatus(StrEnum):
    """What a flag-by-flag write did to one flag."""

    APPLIED = "applied"
    CONFLICTED = "conflicted"  # changed since it was read: nothing written
    FAILED = "failed"
    UNVERIFIED = "unverified"  # written but not read back: pending until reconciled


@dataclass(frozen=True)
class FlagOutcome:
    """What a flag-by-flag write did to one flag, and why (`detail`: empty when applied)."""

    status: FlagOutcomeStatus
    detail: str = ""

    @property
    def applied(self) -> bool:
        return self.status is FlagOutcomeStatus.APPLIED

    def __str__(self) -> str:
        """`applied`, `conflicted: changed concurrently — …`, `failed: …`."""
        if self.status is FlagOutcomeStatus.APPLIED:
            return str(self.status)
        return f"{self.status}: {self.detail}"


class RequestedChange(Protocol):
    """A change request an action became instead of applying (exit 5): what the result,
    the CLI and the pages say of it (`app.approvals.ChangeRequest` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def override(self) -> bool: ...
    @property
    def expires_at(self) -> datetime: ...
    def as_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ActionResult:
    applied: bool
    exit_code: ExitCode
    plan: ActionPlan | None
    audit: tuple[AuditEntry, ...] = ()
    error: str | None = None
    fresh: FlagSnapshot | None = None
    replayed: bool = False  # the idempotency key had been used: this is that result
    change_request: RequestedChange | None = None  # made instead of applying (exit 5)
    #: per flag, what a flag-by-flag write (a non-atomic backend) did; None when the
    #: change was written all at once
    per_flag: Mapping[str, FlagOutcome] | None = None

    def as_json(self) -> dict[str, Any]:
        """docs/design.md §6's advance / rollback document."""
        request = self.plan.request if self.plan else None
        transitions = self.plan.transitions if self.plan else ()
        document: dict[str, Any] = {
            "applied": self.applied,
            "dry_run": bool(request and request.dry_run),
            "environment": request.environment if request else None,
            "guards": [g.as_json() for g in (self.plan.guards if self.plan else ())],
            "override": bool(request and request.override_guards),
            "audit_id": self.audit[0].id if len(self.audit) == 1 else [e.id for e in self.audit],
            "idempotency_key": request.idempotency_key if request else None,
            "error": self.error,
        }
        if self.change_request is not None:
            document["change_request"] = self.change_request.as_json()
        if self.plan is not None and self.plan.skipped:
            document["skipped_read_only"] = dict(self.plan.skipped)
        if self.per_flag is not None:
            document["per_flag"] = {flag: str(said) for flag, said in self.per_flag.items()}
        if len(transitions) == 1:
            t = transitions[0]
            document |= {
                "flag": t.flag,
                "from": {"state": str(t.from_state), "percentage": t.from_percentage},
                "to": {"state": str(t.to_state), "percentage": t.to_percentage},
            }
        else:
            document["flags"] = [
                {
                    "flag": t.flag,
                    "from": {"state": str(t.from_state), "percentage": t.from_percentage},
                    "to": {"state": str(t.to_state), "percentage": t.to_percentage},
                }
                for t in transitions
            ]
        return document
