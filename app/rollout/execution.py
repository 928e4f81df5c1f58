"""Advance, rollback, emergency rollback and restore: authorised, guarded, audited,
never lost.

`execute_action` plans (`app.rollout.planning`), authorises, records the audit entry as
*pending*, applies the change with optimistic concurrency and records the outcome. A
request may carry the transitions the person confirmed (`confirmed`): it then applies
exactly those, or is refused as a conflict (and the audit says what was confirmed) when
a flag is no longer where the person saw it. Rollbacks never look at metrics, so they
work with every metrics source down; their audit goes to the journal when the database
is down too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.audit import AuditEntry, AuditLog, DuplicateKey, Outcome, RecordedAction
from app.errors import RolloutError
from app.flags.backend import (
    FlagBackend,
    FlagChange,
    PartiallyApplied,
    VersionConflict,
)
from app.flags.loader import ConfigInvalid
from app.rollout.action_audit import record_plan, recorded_reason, replay, settle_applied
from app.rollout.action_model import (
    ActionConflict,
    ActionPlan,
    ActionRefused,
    ActionRequest,
    ActionResult,
    EvidenceBefore,
    GuardCheck,
    InvalidRequest,
)
from app.rollout.approval_gate import ApprovalGate, GateUnavailable
from app.rollout.exit_codes import ExitCode
from app.rollout.flag_writes import apply_flag_by_flag, partial_outcomes, per_flag_result
from app.rollout.planning import changed_since, flag_now, plan_action, validate_request
from app.rollout.roles import NotAuthorized, Role, require
from app.rollout.undo import DEFAULT_UNDO_WINDOW
from queries.source import SourceUnavailable

__all__ = ["execute_action", "unavailable_result"]


def execute_action(
    request: ActionRequest,
    backend: FlagBackend,
    audit: AuditLog,
    check_guards: GuardCheck,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    approvals: ApprovalGate | None = None,
    *,
    undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    evidence_before: EvidenceBefore | None = None,
) -> ActionResult:
    """Plan, authorise, audit and apply `request`. Never raises for a user error: the
    result carries the exit code and the message. With `request.confirmed`, exactly the
    confirmed transitions are applied; a flag no longer in a confirmed `from` state (or
    version) is refused with exit 3, recorded as the confirmed change, refused, with the
    fresh state and who made it in its detail. Where `approvals` says the plan needs a
    second person, a request without an approval becomes a change request (exit 5)
    instead, and one naming an approval is applied only if that approval allows it.
    A restore within reason (`app.rollout.undo`, `undo_window`) needs no override: its
    guards, `evidence_before` the change it undoes, are recorded as warnings."""
    try:
        validate_request(request)  # first: a refusal may quote the actor's name
        require(request.identity, needed_role(request), str(request.action))
        previous = audit.find_key(request.idempotency_key)
        if previous is not None and not request.dry_run:
            return replay(request, previous, audit)
        plan = plan_action(
            request,
            backend,
            check_guards,
            audit,
            now=now(),
            undo_window=undo_window,
            evidence_before=evidence_before,
        )
    except NotAuthorized as error:
        return ActionResult(False, ExitCode.REFUSED, None, error=str(error))
    except ActionConflict as error:
        return ActionResult(False, ExitCode.CONFLICT, None, error=str(error), fresh=error.fresh)
    except ActionRefused as error:
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
        code = ExitCode.DONE if plan.may_proceed or request.override_guards else ExitCode.REFUSED
        return ActionResult(False, code, plan)

    if not plan.may_proceed and not request.override_guards:
        failed = ", ".join(g.label for g in plan.guards if not g.passed)
        if plan.undo is not None:  # a restore that is no undo within reason: say why
            failed += f" (no undo without override: {plan.undo.reason})"
        entries = record_plan(audit, plan, Outcome.REFUSED, now())
        code = ExitCode.UNAVAILABLE if plan.metrics_unavailable else ExitCode.REFUSED
        return ActionResult(False, code, plan, entries, error=f"guards failed: {failed}")

    if approvals is not None and approvals.needs_approval(plan):
        gated = _through_approval(request, plan, approvals)
        if gated is not None:
            return gated

    try:
        pending = record_plan(audit, plan, Outcome.PENDING, now())
    except DuplicateKey as duplicate:  # a concurrent double click got there first
        return replay(request, duplicate.existing, audit)
    changes = [FlagChange(t.flag, t.to_state, t.to_percentage) for t in plan.transitions]
    expected = request.expected_versions or plan.snapshot.versions
    versions = {t.flag: expected.get(t.flag, "") for t in plan.transitions}
    if not backend.atomic and len(changes) > 1:
        return apply_flag_by_flag(plan, backend, audit, pending, changes, versions)
    try:
        fresh = backend.apply(request.environment, changes, versions)
    except VersionConflict as conflict:
        said = [flag_now(audit, conflict.current, key) for key in conflict.flags]
        detail = f"{conflict} — {'; '.join(said)}"
        # refused, not failed: nothing went wrong, the flag had moved under the person
        settled = tuple(audit.settle_many(pending, Outcome.REFUSED, detail))
        return ActionResult(False, ExitCode.CONFLICT, plan, settled, detail, conflict.current)
    except PartiallyApplied as partial:
        outcomes = partial_outcomes(partial, audit)
        return per_flag_result(plan, audit, pending, outcomes, partial.current)
    except ConfigInvalid as error:
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(error)))
        return ActionResult(False, ExitCode.REFUSED, plan, settled, str(error))
    except (OSError, RolloutError) as error:  # the backend could not write (UnknownFlag too)
        settled = tuple(audit.settle_many(pending, Outcome.FAILED, str(error)))
        return ActionResult(False, ExitCode.UNAVAILABLE, plan, settled, str(error))
    settled = settle_applied(audit, pending, fresh.receipts)
    return ActionResult(True, ExitCode.DONE, plan, settled, fresh=fresh)


def unavailable_result(
    request: ActionRequest, audit: AuditLog, error: SourceUnavailable
) -> ActionResult:
    """The result of `request` when the flag backend cannot be reached before anything
    was planned: refused as `execute_action` would refuse it (bad input, role), else
    audited as a failed attempt (exit 4)."""
    try:
        validate_request(request)
        require(request.identity, needed_role(request), str(request.action))
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
        action=RecordedAction(request.action),
        flag=request.flag or "*",
        environment=request.environment,
        from_state=None,  # unknown: the flags could not be read
        from_percentage=0.0,
        to_state=None,
        to_percentage=request.to_percentage or 0.0,
        reason=recorded_reason(request),
        outcome=Outcome.PENDING,
        override=request.override_guards,
        idempotency_key=request.idempotency_key,
    )
    try:
        recorded = audit.record(entry)
    except DuplicateKey as duplicate:
        return replay(request, duplicate.existing, audit)
    settled = audit.settle(recorded, Outcome.FAILED, str(error))
    return ActionResult(False, ExitCode.UNAVAILABLE, None, (settled,), error=str(error))


def _through_approval(
    request: ActionRequest, plan: ActionPlan, approvals: ApprovalGate
) -> ActionResult | None:
    """A change request instead of `plan` (exit 5), a refusal of an approval that does not
    allow it, or None when `request` applies an approval that does."""
    if request.approved_request is None:
        try:
            change, steps = approvals.open(plan)
        except GateUnavailable as error:
            return ActionResult(
                False, ExitCode.UNAVAILABLE, plan, error=f"{error}: nothing requested or applied"
            )
        return ActionResult(False, ExitCode.REQUESTED, plan, steps, change_request=change)
    problem = approvals.ticket_problem(request)
    if problem is not None:
        return ActionResult(False, ExitCode.REFUSED, plan, error=problem)
    return None


def _refuse_stale(
    request: ActionRequest, fresh: ActionPlan, audit: AuditLog, at: datetime, stale: list[str]
) -> ActionResult:
    """Record what the person confirmed as refused, with the fresh state in its detail."""
    assert request.confirmed is not None
    detail = "changed since you looked: " + "; ".join(stale)
    confirmed = ActionPlan(
        request,
        fresh.snapshot,
        request.confirmed,
        fresh.guards,
        metrics_unavailable=fresh.metrics_unavailable,
    )
    try:
        pending = record_plan(audit, confirmed, Outcome.PENDING, at)
    except DuplicateKey as duplicate:
        return replay(request, duplicate.existing, audit)
    settled = tuple(audit.settle_many(pending, Outcome.REFUSED, detail))
    return ActionResult(False, ExitCode.CONFLICT, confirmed, settled, detail, fresh.snapshot)


def needed_role(request: ActionRequest) -> Role:
    return Role.ADMIN if request.override_guards else Role.OPERATOR
