"""Advance, rollback and emergency rollback: decided, guarded, audited, never lost.

`plan_action` works out the exact change (and, for an advance, the guard report)
without writing anything; `execute_action` authorises, records the audit entry as
*pending*, applies the change with optimistic concurrency and records the outcome.
Rollbacks never look at metrics, so they work with every metrics source down; their
audit goes to the journal when the database is down too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from app.flags.backend import FlagBackend, FlagChange, FlagSnapshot, UnknownFlag, VersionConflict
from app.flags.loader import ConfigInvalid
from app.flags.model import FlagConfig, FlagState
from app.rollout.audit import AuditEntry, AuditLog, DuplicateKey, Outcome
from app.rollout.guards import GuardResult
from app.rollout.ladder import LadderEnd, next_step, previous_step
from app.rollout.roles import Identity, NotAuthorized, Role, require

__all__ = [
    "Action",
    "ActionRequest",
    "ActionResult",
    "ExitCode",
    "InvalidRequest",
    "Plan",
    "Transition",
    "execute_action",
    "plan_action",
]

MAX_REASON_LENGTH = 2000

#: Evaluates the guards of advancing `flag` in `snapshot` (gathers metrics; never raises).
GuardCheck = Callable[[FlagSnapshot, str], list[GuardResult]]


class ExitCode(IntEnum):
    """DESIGN §6 exit codes, shared by the CLI and the JSON results."""

    DONE = 0
    REFUSED = 1
    USAGE = 2
    CONFLICT = 3
    UNAVAILABLE = 4


class Action(StrEnum):
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    KILL = "kill"
    EMERGENCY = "emergency_rollback"


class InvalidRequest(ValueError):
    """The request itself is wrong (unknown flag, bad percentage, empty reason...)."""


@dataclass(frozen=True)
class ActionRequest:
    """What someone asked for. `expected_versions` are the flag versions the asker saw
    (a page passes what it displayed); None means "as read now" (the CLI)."""

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


@dataclass(frozen=True)
class Plan:
    """The exact change an action would make, with the guard report (advance only)."""

    request: ActionRequest
    snapshot: FlagSnapshot
    transitions: tuple[Transition, ...]
    guards: tuple[GuardResult, ...] = ()

    @property
    def guards_passed(self) -> bool:
        return all(guard.passed for guard in self.guards)


@dataclass(frozen=True)
class ActionResult:
    applied: bool
    exit_code: ExitCode
    plan: Plan | None
    audit: tuple[AuditEntry, ...] = ()
    error: str | None = None
    fresh: FlagSnapshot | None = None
    replayed: bool = False  # the idempotency key had been used: this is that result

    def as_json(self) -> dict[str, Any]:
        """DESIGN §6's advance / rollback document."""
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


def plan_action(request: ActionRequest, backend: FlagBackend, check_guards: GuardCheck) -> Plan:
    """The change `request` would make, read from the backend now; writes nothing.

    Raises InvalidRequest (bad input, unknown flag, end of the ladder), and lets the
    backend's ConfigInvalid / SourceUnavailable through.
    """
    _validate(request)
    snapshot = backend.load(request.environment)
    if request.action is Action.EMERGENCY:
        safety = set(snapshot.config.global_.safety_flags)
        transitions = tuple(
            Transition(key, flag.state, flag.percentage, FlagState.DISABLED, 0.0)
            for key, flag in sorted(snapshot.config.flags.items())
            if flag.state is FlagState.ROLLOUT and key not in safety
        )
        return Plan(request, snapshot, transitions)
    assert request.flag is not None
    try:
        flag = snapshot.flag(request.flag)
    except UnknownFlag as error:
        raise InvalidRequest(f"{error} in {request.environment}") from None
    current = flag.percentage
    steps = snapshot.config.global_.rollout_steps
    try:
        if request.action is Action.ADVANCE:
            target = request.to_percentage
            if target is None:
                target = next_step(current, steps)
            elif target <= current:
                raise InvalidRequest(f"advance must go above the current {current:g} %")
            to = Transition(flag.key, flag.state, current, FlagState.ROLLOUT, target)
            return Plan(request, snapshot, (to,), tuple(check_guards(snapshot, flag.key)))
        if request.action is Action.KILL:
            target = 0.0
        elif request.to_percentage is not None:
            target = request.to_percentage
            if target >= current:
                raise InvalidRequest(f"rollback must go below the current {current:g} %")
        else:
            target = previous_step(current, steps)
    except LadderEnd as error:
        raise InvalidRequest(str(error)) from None
    state = FlagState.DISABLED if target == 0 else FlagState.ROLLOUT
    return Plan(request, snapshot, (Transition(flag.key, flag.state, current, state, target),))


def execute_action(
    request: ActionRequest,
    backend: FlagBackend,
    audit: AuditLog,
    check_guards: GuardCheck,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ActionResult:
    """Plan, authorise, audit and apply `request`. Never raises for a user error: the
    result carries the exit code and the message."""
    try:
        require(request.identity, _needed_role(request), str(request.action))
        previous = audit.find_key(request.idempotency_key)
        if previous is not None and not request.dry_run:
            return _replay(request, previous)
        plan = plan_action(request, backend, check_guards)
    except NotAuthorized as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=str(error))
    except InvalidRequest as error:
        return ActionResult(False, ExitCode.USAGE, None, error=str(error))
    except ConfigInvalid as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=f"flag config invalid: {error}")
    except OSError as error:
        return ActionResult(False, ExitCode.UNAVAILABLE, None, error=f"flags unreadable: {error}")

    if not plan.transitions:
        return ActionResult(False, ExitCode.DONE, plan, error="nothing to change")
    if request.dry_run:
        code = ExitCode.DONE if plan.guards_passed or request.override_guards else ExitCode.REFUSED
        return ActionResult(False, code, plan)

    if not plan.guards_passed and not request.override_guards:
        failed = ", ".join(g.name for g in plan.guards if not g.passed)
        entries = _record(audit, plan, Outcome.REFUSED, now())
        no_source = any(g.name == "data_fresh" and g.value is None for g in plan.guards)
        code = ExitCode.UNAVAILABLE if no_source else ExitCode.REFUSED
        return ActionResult(False, code, plan, entries, error=f"guards failed: {failed}")

    try:
        pending = _record(audit, plan, Outcome.PENDING, now())
    except DuplicateKey as duplicate:  # a concurrent double click got there first
        return _replay(request, duplicate.existing)
    changes = [FlagChange(t.flag, t.to_state, t.to_percentage) for t in plan.transitions]
    expected = request.expected_versions or plan.snapshot.versions
    try:
        fresh = backend.apply(
            request.environment,
            changes,
            {t.flag: expected.get(t.flag, "") for t in plan.transitions},
        )
    except VersionConflict as conflict:
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(conflict)))
        return ActionResult(
            False, ExitCode.CONFLICT, plan, settled, str(conflict), conflict.current
        )
    except (ConfigInvalid, UnknownFlag, OSError, RuntimeError) as error:
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(error)))
        return ActionResult(False, ExitCode.UNAVAILABLE, plan, settled, str(error))
    settled = tuple(audit.settle_many(pending, Outcome.APPLIED))
    return ActionResult(True, ExitCode.DONE, plan, settled, fresh=fresh)


def _needed_role(request: ActionRequest) -> Role:
    return Role.ADMIN if request.override_guards else Role.OPERATOR


def _validate(request: ActionRequest) -> None:
    reason = request.reason.strip()
    if not reason:
        raise InvalidRequest("a reason is required")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    if request.action is not Action.EMERGENCY and not request.flag:
        raise InvalidRequest("which flag?")
    pct = request.to_percentage
    if pct is not None and not 0 <= pct <= 100:
        raise InvalidRequest(f"percentage must be within 0..100, got {pct:g}")
    if request.override_guards and request.action is not Action.ADVANCE:
        raise InvalidRequest("only an advance has guards to override")
    if not 1 <= len(request.idempotency_key) <= 64:
        raise InvalidRequest("the idempotency key must be 1 to 64 characters")


def _record(audit: AuditLog, plan: Plan, outcome: Outcome, at: datetime) -> tuple[AuditEntry, ...]:
    """One audit entry per flag. With several flags (emergency rollback) the first
    carries the request's idempotency key and the others `<key>/<flag>`, so a replay of
    the key finds the first."""
    request = plan.request
    guards = [g.as_json() for g in plan.guards]
    return tuple(
        audit.record_many(
            [
                AuditEntry(
                    at=at,
                    actor=request.identity.name,
                    action=str(request.action),
                    flag=t.flag,
                    environment=request.environment,
                    from_state=str(t.from_state),
                    from_percentage=t.from_percentage,
                    to_state=str(t.to_state),
                    to_percentage=t.to_percentage,
                    reason=request.reason.strip(),
                    outcome=outcome,
                    override=request.override_guards and not plan.guards_passed,
                    idempotency_key=request.idempotency_key
                    if index == 0
                    else f"{request.idempotency_key[:40]}/{t.flag}"[:64],
                    guards=guards,
                )
                for index, t in enumerate(plan.transitions)
            ]
        )
    )


def _replay(request: ActionRequest, previous: AuditEntry) -> ActionResult:
    transition = Transition(
        previous.flag,
        FlagState(previous.from_state),
        previous.from_percentage,
        FlagState(previous.to_state),
        previous.to_percentage,
    )
    applied = previous.outcome is Outcome.APPLIED
    return ActionResult(
        applied,
        ExitCode.DONE if applied or previous.outcome is Outcome.PENDING else ExitCode.REFUSED,
        Plan(request, FlagSnapshot(request.environment, FlagConfig(version="")), (transition,)),
        (previous,),
        error=None if applied else f"already recorded as {previous.outcome}",
        replayed=True,
    )
