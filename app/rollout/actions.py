"""Advance, rollback, emergency rollback and restore: decided, guarded, audited, never lost.

`plan_action` works out the exact change (and, for an advance or a restore that goes
up, the guard report) without writing anything; `execute_action` authorises, records
the audit entry as *pending*, applies the change with optimistic concurrency and
records the outcome. A request may carry the transitions the person confirmed
(`confirmed`): it then applies exactly those, or is refused as a conflict (and the
audit says what was confirmed) when a flag is no longer where the person saw it.
Rollbacks never look at metrics, so they work with every metrics source down; their
audit goes to the journal when the database is down too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from app.audit import AuditEntry, AuditLog, DuplicateKey, Outcome, describe_change
from app.errors import RolloutError
from app.flags.backend import (
    FlagBackend,
    FlagChange,
    FlagSnapshot,
    PartiallyApplied,
    UnknownFlag,
    VersionConflict,
)
from app.flags.loader import ConfigInvalid
from app.flags.model import FlagConfig, FlagDefinition, FlagState
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.inputs import (
    MAX_REASON_LENGTH,
    actor_problem,
    environment_problem,
    flag_key_problem,
    reason_problem,
)
from app.rollout.ladder import LadderEnd, next_step, previous_step
from app.rollout.roles import Identity, NotAuthorized, Role, require
from queries.source import SourceUnavailable

if TYPE_CHECKING:
    from app.approvals.model import ChangeRequest

__all__ = [
    "MAX_REASON_LENGTH",
    "Action",
    "ActionRequest",
    "ActionResult",
    "ApprovalGate",
    "ExitCode",
    "InvalidRequest",
    "Plan",
    "PlanConflict",
    "PlanRefused",
    "Transition",
    "changed_since",
    "execute_action",
    "plan_action",
    "target_of",
    "unavailable_result",
]

#: Evaluates the guards of advancing `flag` in `snapshot` (gathers metrics; never raises).
GuardCheck = Callable[[FlagSnapshot, str], list[GuardResult]]


class Action(StrEnum):
    ADVANCE = "advance"
    ROLLBACK = "rollback"
    KILL = "kill"
    EMERGENCY = "emergency_rollback"
    RESTORE = "restore"


class InvalidRequest(RolloutError, ValueError):
    """The request itself is wrong (unknown flag, bad percentage, empty reason...)."""


class PlanRefused(InvalidRequest):
    """The request is well formed but cannot be done (a restore of a record that was
    not applied): exit 1."""


class PlanConflict(InvalidRequest):
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
class Plan:
    """The exact change an action would make, with the guard report (advance only)."""

    request: ActionRequest
    snapshot: FlagSnapshot
    transitions: tuple[Transition, ...]
    guards: tuple[GuardResult, ...] = ()
    #: flags an emergency rollback leaves alone because the backend shows them read-only,
    #: each with the reason
    skipped: Mapping[str, str] = field(default_factory=dict)

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
    change_request: ChangeRequest | None = None  # made instead of applying (exit 5)
    #: per flag, what a flag-by-flag write (a non-atomic backend) did: "applied",
    #: "conflicted: …" or "failed: …"; None when the change was written all at once
    per_flag: Mapping[str, str] | None = None

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
        if self.change_request is not None:
            document["change_request"] = self.change_request.as_json()
        if self.plan is not None and self.plan.skipped:
            document["skipped_read_only"] = dict(self.plan.skipped)
        if self.per_flag is not None:
            document["per_flag"] = dict(self.per_flag)
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


class ApprovalGate(Protocol):
    """Where a change waits for a second person (`app.approvals.Approvals`)."""

    def needs_approval(self, plan: Plan) -> bool:
        """Whether `plan` may only be applied through an approved change request."""

    def ticket_problem(self, request: ActionRequest) -> str | None:
        """Why `request.approved_request` does not allow `request` (None: it does)."""

    def open(self, plan: Plan) -> tuple[ChangeRequest, tuple[AuditEntry, ...]]:
        """Store `plan` as a change request (the same one again for a reused idempotency
        key) and audit it; ApprovalsUnavailable when it cannot be stored."""


def plan_action(
    request: ActionRequest,
    backend: FlagBackend,
    check_guards: GuardCheck,
    audit: AuditLog | None = None,
) -> Plan:
    """The change `request` would make, read from the backend now; writes nothing.

    Raises InvalidRequest (bad input, unknown flag, end of the ladder), PlanRefused /
    PlanConflict (a restore that cannot be done), and lets the backend's ConfigInvalid /
    SourceUnavailable through. A restore needs `audit`.
    """
    _validate(request)
    snapshot = backend.load(request.environment)
    if request.action is Action.EMERGENCY:
        safety = set(snapshot.config.global_.safety_flags)
        candidates = [
            (key, flag)
            for key, flag in sorted(snapshot.config.flags.items())
            if flag.state is FlagState.ROLLOUT and key not in safety
        ]
        transitions = tuple(
            Transition(key, flag.state, flag.percentage, FlagState.DISABLED, 0.0)
            for key, flag in candidates
            if key not in snapshot.read_only
        )
        skipped = {
            key: snapshot.read_only[key] for key, _ in candidates if key in snapshot.read_only
        }
        return Plan(request, snapshot, transitions, skipped=skipped)
    if request.action is Action.RESTORE:
        if audit is None:
            raise InvalidRequest("a restore needs the audit log")
        plan = _plan_restore(request, snapshot, audit, check_guards)
        for transition in plan.transitions:
            _refuse_read_only(snapshot, transition.flag)
        return plan
    assert request.flag is not None
    try:
        flag = snapshot.flag(request.flag)
    except UnknownFlag as error:
        raise InvalidRequest(f"{error} in {request.environment}") from None
    _refuse_read_only(snapshot, flag.key)
    transition = target_of(
        request.action, flag, snapshot.config.global_.rollout_steps, request.to_percentage
    )
    guards = tuple(check_guards(snapshot, flag.key)) if request.action is Action.ADVANCE else ()
    return Plan(request, snapshot, (transition,), guards)


def _refuse_read_only(snapshot: FlagSnapshot, key: str) -> None:
    """PlanRefused when the backend shows `key` read-only (with its reason)."""
    reason = snapshot.read_only.get(key)
    if reason is not None:
        raise PlanRefused(f"{key} is read-only in {snapshot.environment}: {reason}")


def target_of(
    action: Action, flag: FlagDefinition, steps: Sequence[float], to: float | None = None
) -> Transition:
    """Where `action` takes `flag` (the ladder's next / previous step, 0 % for a kill, or
    `to`); InvalidRequest at the end of the ladder or for a `to` the wrong way."""
    current = flag.percentage
    if to is not None and to == 0:
        to = 0.0  # "-0" means 0: never record "disabled -0 %"
    try:
        if action is Action.ADVANCE:
            if to is None:
                to = next_step(current, steps)
            elif to <= current:
                raise InvalidRequest(f"advance must go above the current {current:g} %")
            return Transition(flag.key, flag.state, current, FlagState.ROLLOUT, to)
        if action is Action.KILL:
            to = 0.0
        elif to is not None:
            if to >= current:
                raise InvalidRequest(f"rollback must go below the current {current:g} %")
        else:
            to = previous_step(current, steps)
    except LadderEnd as error:
        raise InvalidRequest(str(error)) from None
    state = FlagState.DISABLED if to == 0 else FlagState.ROLLOUT
    return Transition(flag.key, flag.state, current, state, to)


def changed_since(
    audit: AuditLog, snapshot: FlagSnapshot, transitions: Sequence[Transition]
) -> list[str]:
    """For each flag no longer in its transition's `from` state: what it is now and who
    changed it last ("ab_testing is now rollout 10 %: olga … 25 % → 10 %")."""
    return [
        _now_and_who(audit, snapshot, t.flag)
        for t in transitions
        if t.flag not in snapshot.config.flags or not t.starts_from(snapshot.flag(t.flag))
    ]


def _now_and_who(audit: AuditLog, snapshot: FlagSnapshot, key: str) -> str:
    flag = snapshot.config.flags.get(key)
    if flag is None:
        return f"{key} no longer exists in {snapshot.environment}"
    last = audit.latest_applied(snapshot.environment, key)
    who = f": {describe_change(last)}" if last is not None else " (by an edit outside the log)"
    return f"{key} is now {flag.state} {flag.percentage:g} %{who}"


def _plan_restore(
    request: ActionRequest, snapshot: FlagSnapshot, audit: AuditLog, check_guards: GuardCheck
) -> Plan:
    """Every flag the recorded action touched, back to its exact prior state."""
    assert request.restore_of is not None
    record = audit.get(request.restore_of)
    if record is None:
        raise InvalidRequest(f"no audit record #{request.restore_of}")
    if record.environment != request.environment:
        raise InvalidRequest(
            f"audit record #{record.id} is in {record.environment}, not {request.environment}"
        )
    group = audit.action_group(record)
    for entry in group:
        if entry.outcome is not Outcome.APPLIED:
            raise PlanRefused(
                f"audit record #{entry.id} ({entry.flag}) was not applied ({entry.outcome}): "
                "there is nothing to restore"
            )
    recorded = tuple(
        Transition(
            e.flag,
            FlagState(e.to_state),
            e.to_percentage,
            FlagState(e.from_state),
            e.from_percentage,
        )
        for e in group
    )
    changed = changed_since(audit, snapshot, recorded)
    if changed:
        raise PlanConflict(
            f"cannot restore #{record.id}: changed since — {'; '.join(changed)}", snapshot
        )
    up = [t for t in recorded if t.to_percentage > t.from_percentage]
    guards: list[GuardResult] = []
    for t in up:
        found = check_guards(snapshot, t.flag)
        guards.extend(
            found if len(up) == 1 else [replace(g, name=f"{t.flag}: {g.name}") for g in found]
        )
    return Plan(request, snapshot, recorded, tuple(guards))


def execute_action(
    request: ActionRequest,
    backend: FlagBackend,
    audit: AuditLog,
    check_guards: GuardCheck,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    approvals: ApprovalGate | None = None,
) -> ActionResult:
    """Plan, authorise, audit and apply `request`. Never raises for a user error: the
    result carries the exit code and the message. With `request.confirmed`, exactly the
    confirmed transitions are applied; a flag no longer in a confirmed `from` state (or
    version) is refused with exit 3, recorded as the confirmed change, failed, with the
    fresh state and who made it in its detail. Where `approvals` says the plan needs a
    second person, a request without an approval becomes a change request (exit 5)
    instead, and one naming an approval is applied only if that approval allows it."""
    try:
        _validate(request)  # first: a refusal may quote the actor's name
        require(request.identity, _needed_role(request), str(request.action))
        previous = audit.find_key(request.idempotency_key)
        if previous is not None and not request.dry_run:
            return _replay(request, previous, audit)
        plan = plan_action(request, backend, check_guards, audit)
    except NotAuthorized as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=str(error))
    except PlanConflict as error:
        return ActionResult(False, ExitCode.CONFLICT, None, error=str(error), fresh=error.fresh)
    except PlanRefused as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=str(error))
    except InvalidRequest as error:
        return ActionResult(False, ExitCode.USAGE, None, error=str(error))
    except ConfigInvalid as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=f"flag config invalid: {error}")
    except OSError as error:
        return ActionResult(False, ExitCode.UNAVAILABLE, None, error=f"flags unreadable: {error}")
    except SourceUnavailable as error:  # a flag server down: the attempt is audited
        return _audit_unavailable(request, audit, error, now())

    if request.confirmed is not None:
        stale = changed_since(audit, plan.snapshot, request.confirmed)
        if not stale and set(request.confirmed) != set(plan.transitions):
            stale = [
                "the change is now: " + "; ".join(t.diff for t in plan.transitions)
                if plan.transitions
                else "there is nothing to change now"
            ]
        if stale:
            return _refuse_stale(request, plan, audit, now(), stale)
    if not plan.transitions:
        return ActionResult(False, ExitCode.DONE, plan, error="nothing to change")
    if request.dry_run:
        code = ExitCode.DONE if plan.guards_passed or request.override_guards else ExitCode.REFUSED
        return ActionResult(False, code, plan)

    if not plan.guards_passed and not request.override_guards:
        failed = ", ".join(g.name for g in plan.guards if not g.passed)
        entries = _record(audit, plan, Outcome.REFUSED, now())
        no_source = any(
            g.name.rsplit(": ", 1)[-1] == "data_fresh" and g.value is None for g in plan.guards
        )
        code = ExitCode.UNAVAILABLE if no_source else ExitCode.REFUSED
        return ActionResult(False, code, plan, entries, error=f"guards failed: {failed}")

    if approvals is not None and approvals.needs_approval(plan):
        gated = _through_approval(request, plan, approvals)
        if gated is not None:
            return gated

    try:
        pending = _record(audit, plan, Outcome.PENDING, now())
    except DuplicateKey as duplicate:  # a concurrent double click got there first
        return _replay(request, duplicate.existing, audit)
    changes = [FlagChange(t.flag, t.to_state, t.to_percentage) for t in plan.transitions]
    expected = request.expected_versions or plan.snapshot.versions
    versions = {t.flag: expected.get(t.flag, "") for t in plan.transitions}
    if not getattr(backend, "atomic", True) and len(changes) > 1:
        return _apply_flag_by_flag(plan, backend, audit, pending, changes, versions)
    try:
        fresh = backend.apply(request.environment, changes, versions)
    except VersionConflict as conflict:
        said = [_now_and_who(audit, conflict.current, key) for key in conflict.flags]
        detail = f"{conflict} — {'; '.join(said)}"
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, detail))
        return ActionResult(False, ExitCode.CONFLICT, plan, settled, detail, conflict.current)
    except PartiallyApplied as partial:
        outcomes = _partial_outcomes(partial, audit)
        return _per_flag_result(plan, audit, pending, outcomes, partial.current)
    except ConfigInvalid as error:
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(error)))
        return ActionResult(False, ExitCode.REFUSED, plan, settled, str(error))
    except (UnknownFlag, OSError, RuntimeError) as error:
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(error)))
        return ActionResult(False, ExitCode.UNAVAILABLE, plan, settled, str(error))
    settled = _settle_applied(audit, pending, fresh.receipts)
    return ActionResult(True, ExitCode.DONE, plan, settled, fresh=fresh)


def _settle_applied(
    audit: AuditLog, pending: Sequence[AuditEntry], receipts: Mapping[str, str]
) -> tuple[AuditEntry, ...]:
    """Settle `pending` as applied, each with its backend receipt (the flag server's
    event) as detail; those without one in one transaction."""
    plain = [e for e in pending if not receipts.get(e.flag)]
    settled = {e.id: e for e in audit.settle_many(plain, Outcome.APPLIED)} if plain else {}
    for entry in pending:
        if receipts.get(entry.flag):
            settled[entry.id] = audit.settle(entry, Outcome.APPLIED, receipts[entry.flag])
    return tuple(settled[e.id] for e in pending)


def _apply_flag_by_flag(
    plan: Plan,
    backend: FlagBackend,
    audit: AuditLog,
    pending: Sequence[AuditEntry],
    changes: Sequence[FlagChange],
    versions: Mapping[str, str],
) -> ActionResult:
    """The changes on a backend that writes flag by flag, each its own compare-and-set:
    a flag refused before any write (stale, gone, read-only) is set aside and the rest
    sent again; the backend goes on after a conflict once writing. One audit outcome per
    flag; a flag written but not read back stays pending (reconciliation settles it)."""
    environment = plan.request.environment
    outcomes: dict[str, str] = {}
    remaining = list(changes)
    fresh: FlagSnapshot | None = None
    down: SourceUnavailable | None = None
    while remaining:
        try:
            fresh = backend.apply(
                environment, remaining, {c.flag: versions[c.flag] for c in remaining}
            )
        except VersionConflict as conflict:  # refused before any write
            fresh = conflict.current
            for flag in conflict.flags:
                said = _now_and_who(audit, conflict.current, flag)
                outcomes[flag] = f"conflicted: changed concurrently — {said}"
            remaining = [c for c in remaining if c.flag not in conflict.flags]
            continue
        except UnknownFlag as unknown:
            outcomes[unknown.flag] = f"failed: {unknown}"
            remaining = [c for c in remaining if c.flag != unknown.flag]
            continue
        except ConfigInvalid as invalid:
            named = {issue.flag for issue in invalid.issues if issue.flag}
            if not named & {c.flag for c in remaining}:
                outcomes |= {c.flag: f"failed: {invalid}" for c in remaining}
                break
            outcomes |= {i.flag: f"failed: {i.message}" for i in invalid.issues if i.flag}
            remaining = [c for c in remaining if c.flag not in named]
            continue
        except PartiallyApplied as partial:
            fresh = partial.current
            outcomes |= _partial_outcomes(partial, audit)
            break
        except SourceUnavailable as error:
            down = error
            outcomes |= {c.flag: f"failed: {error}" for c in remaining}
            break
        except (OSError, RuntimeError) as error:
            outcomes |= {c.flag: f"failed: {error}" for c in remaining}
            break
        outcomes |= {c.flag: "applied" for c in remaining}
        break
    return _per_flag_result(plan, audit, pending, outcomes, fresh, down=down)


def _partial_outcomes(partial: PartiallyApplied, audit: AuditLog) -> dict[str, str]:
    """Each flag's outcome as a PartiallyApplied tells it."""
    outcomes = {flag: "applied" for flag in partial.applied}
    for flag in partial.conflicted:
        said = _now_and_who(audit, partial.current, flag) if partial.current else flag
        outcomes[flag] = f"conflicted: changed concurrently — {said}"
    outcomes |= {flag: f"failed: {reason}" for flag, reason in partial.failed.items()}
    outcomes |= {flag: f"unverified: {why}" for flag, why in partial.unverified.items()}
    return outcomes


def _per_flag_result(
    plan: Plan,
    audit: AuditLog,
    pending: Sequence[AuditEntry],
    outcomes: Mapping[str, str],
    fresh: FlagSnapshot | None,
    receipts: Mapping[str, str] | None = None,
    down: SourceUnavailable | None = None,
) -> ActionResult:
    """Settle each flag's record as its outcome says (a flag with none was not
    attempted), and say what was switched off, what conflicted and what failed."""
    receipts = dict(receipts or (fresh.receipts if fresh is not None else {}))
    full = {
        e.flag: outcomes.get(e.flag, "failed: not attempted after an earlier failure")
        for e in pending
    }
    applied = [e for e in pending if full[e.flag] == "applied"]
    settled = {e.id: e for e in _settle_applied(audit, applied, receipts)}
    for entry in pending:
        if entry.id not in settled:
            said = full[entry.flag]
            if said.startswith("unverified"):
                settled[entry.id] = entry  # stays pending: reconciliation compares later
                continue
            settled[entry.id] = audit.settle(entry, Outcome.FAILED, said.split(": ", 1)[1])
    done = [flag for flag, said in full.items() if said == "applied"]
    conflicted = [flag for flag, said in full.items() if said.startswith("conflicted")]
    failed = [
        f"{flag} ({said.split(': ', 1)[1]})"
        for flag, said in full.items()
        if said.startswith("failed")
    ]
    unverified = [flag for flag, said in full.items() if said.startswith("unverified")]
    verb = "switched off" if plan.request.action is Action.EMERGENCY else "applied"
    error = None
    if conflicted or failed or unverified:
        parts = [f"{verb}: {', '.join(done) or 'none'}"]
        if conflicted:
            parts.append(f"conflicted: {', '.join(conflicted)}")
        if failed:
            parts.append(f"failed: {'; '.join(failed)}")
        if unverified:
            parts.append(
                f"written but not read back (pending until reconciled): {', '.join(unverified)}"
            )
        error = "; ".join(parts)
    code = (
        ExitCode.UNAVAILABLE
        if down is not None or failed or unverified
        else ExitCode.CONFLICT
        if conflicted
        else ExitCode.DONE
    )
    return ActionResult(
        not (conflicted or failed or unverified),
        code,
        plan,
        tuple(settled[e.id] for e in pending),
        error,
        fresh,
        per_flag=full,
    )


def unavailable_result(
    request: ActionRequest, audit: AuditLog, error: SourceUnavailable
) -> ActionResult:
    """The result of `request` when the flag backend cannot be reached before anything
    was planned: refused as `execute_action` would refuse it (bad input, role), else
    audited as a failed attempt (exit 4)."""
    try:
        _validate(request)
        require(request.identity, _needed_role(request), str(request.action))
    except NotAuthorized as refused:
        return ActionResult(False, ExitCode.REFUSED, None, error=str(refused))
    except InvalidRequest as invalid:
        return ActionResult(False, ExitCode.USAGE, None, error=str(invalid))
    return _audit_unavailable(request, audit, error, datetime.now(UTC))


def _audit_unavailable(
    request: ActionRequest, audit: AuditLog, error: SourceUnavailable, at: datetime
) -> ActionResult:
    """Record the attempt as failed (the flag's state unknown: it could not be read)."""
    if request.dry_run:
        return ActionResult(False, ExitCode.UNAVAILABLE, None, error=str(error))
    entry = AuditEntry(
        at=at,
        actor=request.identity.name,
        action=str(request.action),
        flag=request.flag or "*",
        environment=request.environment,
        from_state="unknown",
        from_percentage=0.0,
        to_state="unknown",
        to_percentage=request.to_percentage or 0.0,
        reason=_recorded_reason(request),
        outcome=Outcome.PENDING,
        override=request.override_guards,
        idempotency_key=request.idempotency_key,
    )
    try:
        recorded = audit.record(entry)
    except DuplicateKey as duplicate:
        return _replay(request, duplicate.existing, audit)
    settled = audit.settle(recorded, Outcome.FAILED, str(error))
    return ActionResult(False, ExitCode.UNAVAILABLE, None, (settled,), error=str(error))


def _through_approval(
    request: ActionRequest, plan: Plan, approvals: ApprovalGate
) -> ActionResult | None:
    """A change request instead of `plan` (exit 5), a refusal of an approval that does not
    allow it, or None when `request` applies an approval that does."""
    from app.approvals.store import ApprovalsUnavailable

    if request.approved_request is None:
        try:
            change, steps = approvals.open(plan)
        except ApprovalsUnavailable as error:
            return ActionResult(
                False, ExitCode.UNAVAILABLE, plan, error=f"{error}: nothing requested or applied"
            )
        return ActionResult(False, ExitCode.REQUESTED, plan, steps, change_request=change)
    problem = approvals.ticket_problem(request)
    if problem is not None:
        return ActionResult(False, ExitCode.REFUSED, plan, error=problem)
    return None


def _refuse_stale(
    request: ActionRequest, fresh: Plan, audit: AuditLog, at: datetime, stale: list[str]
) -> ActionResult:
    """Record what the person confirmed as failed, with the fresh state in its detail."""
    assert request.confirmed is not None
    detail = "changed since you looked: " + "; ".join(stale)
    confirmed = Plan(request, fresh.snapshot, request.confirmed, fresh.guards)
    try:
        pending = _record(audit, confirmed, Outcome.PENDING, at)
    except DuplicateKey as duplicate:
        return _replay(request, duplicate.existing, audit)
    settled = tuple(audit.settle_many(pending, Outcome.FAILED, detail))
    return ActionResult(False, ExitCode.CONFLICT, confirmed, settled, detail, fresh.snapshot)


def _needed_role(request: ActionRequest) -> Role:
    return Role.ADMIN if request.override_guards else Role.OPERATOR


def _validate(request: ActionRequest) -> None:
    """InvalidRequest naming the first thing wrong with what was typed or asked for."""
    problem = (
        reason_problem(request.reason)
        or actor_problem(request.identity.name)
        or environment_problem(request.environment)
        or (flag_key_problem(request.flag) if request.flag else None)
    )
    if problem:
        raise InvalidRequest(problem)
    if request.action is Action.RESTORE and not (request.restore_of or "").strip():
        raise InvalidRequest("which audit record to restore?")
    if request.action not in (Action.EMERGENCY, Action.RESTORE) and not request.flag:
        raise InvalidRequest("which flag?")
    pct = request.to_percentage
    if pct is not None and not 0 <= pct <= 100:
        raise InvalidRequest(f"percentage must be within 0..100, got {pct:g}")
    if request.override_guards and request.action not in (Action.ADVANCE, Action.RESTORE):
        raise InvalidRequest("only an advance or a restore has guards to override")
    if not 1 <= len(request.idempotency_key) <= 64:
        raise InvalidRequest("the idempotency key must be 1 to 64 characters")


def _record(audit: AuditLog, plan: Plan, outcome: Outcome, at: datetime) -> tuple[AuditEntry, ...]:
    """One audit entry per flag. With several flags (emergency rollback) the first
    carries the request's idempotency key and the others `<key>/<flag>`, so a replay of
    the key finds the first."""
    request = plan.request
    guards = [g.as_json() for g in plan.guards or request.judged]
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
                    reason=_recorded_reason(request),
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


def _recorded_reason(request: ActionRequest) -> str:
    reason = request.reason.strip()
    if request.action is Action.RESTORE:
        return f"restore of #{(request.restore_of or '').strip().lstrip('#')}: {reason}"
    return reason


def _replay(request: ActionRequest, previous: AuditEntry, audit: AuditLog) -> ActionResult:
    """The result of the action already recorded under this key (all its records)."""
    group = audit.action_group(previous)
    states = set(FlagState)
    transitions = tuple(
        Transition(
            e.flag,
            FlagState(e.from_state),
            e.from_percentage,
            FlagState(e.to_state),
            e.to_percentage,
        )
        for e in group
        if e.from_state in states and e.to_state in states  # not an unreadable attempt
    )
    applied = previous.outcome is Outcome.APPLIED
    return ActionResult(
        applied,
        ExitCode.DONE if applied or previous.outcome is Outcome.PENDING else ExitCode.REFUSED,
        Plan(request, FlagSnapshot(request.environment, FlagConfig(version="")), transitions),
        tuple(group),
        error=None if applied else f"already recorded as {previous.outcome}",
        replayed=True,
    )
