"""The audit records of an action: one per flag, written before the change and settled
after; and the result of an idempotency key already used (`replay`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.audit import AuditEntry, AuditLog, Outcome, RecordedAction
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagConfig
from app.rollout.action_model import Action, ActionPlan, ActionRequest, ActionResult, Transition
from app.rollout.exit_codes import ExitCode

__all__ = ["record_plan", "recorded_reason", "replay", "settle_applied", "transition_entry"]


def transition_entry(
    transition: Transition,
    *,
    at: datetime,
    actor: str,
    action: Action,
    environment: str,
    reason: str,
    outcome: Outcome,
    override: bool,
    guards: list[dict[str, Any]],
    idempotency_key: str | None = None,
) -> AuditEntry:
    """The audit record of one flag's transition (an action's, or a change request's step)."""
    return AuditEntry(
        at=at,
        actor=actor,
        action=RecordedAction(action),
        flag=transition.flag,
        environment=environment,
        from_state=transition.from_state,
        from_percentage=transition.from_percentage,
        to_state=transition.to_state,
        to_percentage=transition.to_percentage,
        reason=reason,
        outcome=outcome,
        override=override,
        idempotency_key=idempotency_key,
        guards=guards,
    )


def record_plan(
    audit: AuditLog, plan: ActionPlan, outcome: Outcome, at: datetime
) -> tuple[AuditEntry, ...]:
    """One audit entry per flag. With several flags (emergency rollback) the first
    carries the request's idempotency key and the others `<key>/<flag>`, so a replay of
    the key finds the first."""
    request = plan.request
    guards = [g.as_json() for g in plan.guards or request.judged]
    return tuple(
        audit.record_many(
            [
                transition_entry(
                    t,
                    at=at,
                    actor=request.identity.name,
                    action=request.action,
                    environment=request.environment,
                    reason=recorded_reason(request),
                    outcome=outcome,
                    override=request.override_guards and not plan.may_proceed,
                    idempotency_key=request.idempotency_key
                    if index == 0
                    else f"{request.idempotency_key[:40]}/{t.flag}"[:64],
                    guards=guards,
                )
                for index, t in enumerate(plan.transitions)
            ]
        )
    )


def recorded_reason(request: ActionRequest) -> str:
    reason = request.reason.strip()
    if request.action is Action.RESTORE:
        return f"restore of #{(request.restore_of or '').strip().lstrip('#')}: {reason}"
    return reason


def settle_applied(
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


def replay(request: ActionRequest, previous: AuditEntry, audit: AuditLog) -> ActionResult:
    """The result of the action already recorded under this key (all its records)."""
    group = audit.action_group(previous)
    transitions = tuple(
        Transition(e.flag, e.from_state, e.from_percentage, e.to_state, e.to_percentage)
        for e in group
        if e.from_state is not None and e.to_state is not None  # not an unreadable attempt
    )
    applied = previous.outcome is Outcome.APPLIED
    return ActionResult(
        applied,
        ExitCode.DONE if applied or previous.outcome is Outcome.PENDING else ExitCode.REFUSED,
        ActionPlan(request, FlagSnapshot(request.environment, FlagConfig(version="")), transitions),
        tuple(group),
        error=None if applied else f"already recorded as {previous.outcome}",
        replayed=True,
    )
