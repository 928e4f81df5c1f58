"""What a person does to a plan: set it, pause, resume, abort. Each checks the role
inside (operator), validates what was typed, writes the plan from the version the
person saw, and records an audit entry (outcome `recorded`: the flag does not move).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from app.audit import AuditEntry, AuditLog, Outcome, RecordedAction
from app.autopilot.model import (
    DEFAULT_GATES,
    PlanInvalid,
    PlanOptions,
    PlanStatus,
    RolloutPlan,
    plan_problems,
)
from app.autopilot.store import PlanStore
from app.flags.backend import FlagSnapshot, UnknownFlag
from app.rollout.guards import GuardName
from app.rollout.inputs import actor_problem
from app.rollout.roles import Identity, NotAuthorized, Role, require

#: why a plan set where changes need a second person waits
SECOND_PERSON = "waits for a second operator to start it: changes here need a second person"

__all__ = ["SECOND_PERSON", "abort_plan", "default_gates", "pause_plan", "resume_plan", "set_plan"]


def default_gates(flag: str, canary_flag: str | None) -> frozenset[GuardName]:
    """All six guards, and the canary verdict for the flag the canary analysis is about."""
    return DEFAULT_GATES | ({GuardName.CANARY} if flag == canary_flag else set())


def set_plan(
    store: PlanStore,
    audit: AuditLog,
    identity: Identity,
    snapshot: FlagSnapshot,
    flag: str,
    options: PlanOptions,
    *,
    now: datetime,
    seen_version: int = 0,
    canary_flag: str | None = None,
    approval_required: bool = False,
) -> RolloutPlan:
    """Attach (or replace) `flag`'s plan as `options` say in `snapshot`'s environment,
    active from where the flag is now. `seen_version` is the version of the plan the
    person edited (0: none). Where a change needs a second person (`approval_required`),
    the plan is set paused: another operator starts it by resuming it (the four eyes on
    all its steps at once).
    NotAuthorized below operator; PlanInvalid naming each problem (unknown or read-only
    flag too); PlanChanged when the plan changed since it was seen; PlansUnavailable."""
    require(identity, Role.OPERATOR, "set a rollout plan")
    chosen = default_gates(flag, canary_flag) if options.gates is None else options.gates
    problems = plan_problems(options.steps, options.soak, chosen, options.stop_at)
    problems += _actor_problems(identity)
    try:
        current = snapshot.flag(flag)
    except UnknownFlag:
        problems.append(f"unknown flag {flag!r} in {snapshot.environment}")
    else:
        if flag in snapshot.read_only:
            problems.append(f"{flag} is read-only: {snapshot.read_only[flag]}")
    if problems:
        raise PlanInvalid(problems)
    plan = RolloutPlan(
        flag=flag,
        environment=snapshot.environment,
        steps=options.steps,
        soak=options.soak,
        created_by=identity.name,
        created_account=identity.account or "",
        created_at=now,
        expected_state=current.state,
        expected_percentage=current.percentage,
        gates=chosen,
        on_failure=options.on_failure,
        stop_at=options.stop_at,
        allowed_hours=options.allowed_hours,
        dry_run=options.dry_run,
        budget=options.budget,
        status=PlanStatus.PAUSED if approval_required else PlanStatus.ACTIVE,
        status_reason=f"{SECOND_PERSON} (set by {identity.name})" if approval_required else "",
        status_by=identity.name,
        status_at=now,
        last_decision=SECOND_PERSON if approval_required else "plan set: the next tick looks at it",
        last_decision_at=now,
        version=seen_version + 1,
    )
    stored = store.add(plan)
    _audit(audit, stored, identity, RecordedAction.PLAN_SET, f"plan set: {stored.text}", now)
    return stored


def pause_plan(
    store: PlanStore,
    audit: AuditLog,
    identity: Identity,
    plan: RolloutPlan,
    reason: str,
    now: datetime,
) -> RolloutPlan:
    """Hold `plan` where the flag is; the autopilot changes nothing until resumed."""
    return _move(
        store, audit, identity, plan, PlanStatus.PAUSED, RecordedAction.PLAN_PAUSE, reason, now
    )


def resume_plan(
    store: PlanStore,
    audit: AuditLog,
    identity: Identity,
    plan: RolloutPlan,
    snapshot: FlagSnapshot,
    reason: str,
    now: datetime,
    *,
    approval_required: bool = False,
) -> RolloutPlan:
    """Make `plan` active again from where the flag is now (a person accepted it there).
    Where changes need a second person, whoever set the plan cannot start it."""
    require(identity, Role.OPERATOR, "resume a rollout plan")
    if plan.status is PlanStatus.ABORTED:
        raise PlanInvalid(["an aborted plan cannot be resumed: set a new plan"])
    same_account = bool(identity.account) and identity.account == plan.created_account
    if approval_required and (identity.name == plan.created_by or same_account):
        who = (
            identity.name
            if identity.name == plan.created_by
            else f"your OS account {identity.account}"
        )
        raise NotAuthorized(
            f"{who} set this plan: in {plan.environment} another operator starts "
            "it (changes there need a second person)"
        )
    try:
        flag = snapshot.flag(plan.flag)
    except UnknownFlag:
        raise PlanInvalid([f"{plan.flag} no longer exists in {plan.environment}"]) from None
    moved = replace(
        plan,
        expected_state=flag.state,
        expected_percentage=flag.percentage,
        ticks_without_data=0,
        failing_since=None,
    )
    return _move(
        store, audit, identity, moved, PlanStatus.ACTIVE, RecordedAction.PLAN_RESUME, reason, now
    )


def abort_plan(
    store: PlanStore,
    audit: AuditLog,
    identity: Identity,
    plan: RolloutPlan,
    reason: str,
    now: datetime,
) -> RolloutPlan:
    """End `plan` for good; the flag stays where it is."""
    return _move(
        store, audit, identity, plan, PlanStatus.ABORTED, RecordedAction.PLAN_ABORT, reason, now
    )


def _move(
    store: PlanStore,
    audit: AuditLog,
    identity: Identity,
    plan: RolloutPlan,
    status: PlanStatus,
    action: RecordedAction,
    reason: str,
    now: datetime,
) -> RolloutPlan:
    require(identity, Role.OPERATOR, action.replace("_", " "))
    problems = _actor_problems(identity)
    if len(reason) > 500:
        problems.append("the reason is longer than 500 characters")
    if problems:
        raise PlanInvalid(problems)
    if plan.status is PlanStatus.ABORTED:
        raise PlanInvalid(["the plan was aborted: nothing to change"])
    words = _PLAN_MOVES[action]
    said = f"{words} by {identity.name}" + (f": {reason.strip()}" if reason.strip() else "")
    changed = replace(
        plan,
        status=status,
        status_reason=said,
        status_by=identity.name,
        status_at=now,
        last_decision=said,
        last_decision_at=now,
    )
    saved = store.save(changed)  # PlanChanged: someone else changed it first
    _audit(audit, saved, identity, action, said, now)
    return saved


#: what each move does to a plan, as its audit record and the plan's status say it
_PLAN_MOVES = {
    RecordedAction.PLAN_PAUSE: "paused",
    RecordedAction.PLAN_RESUME: "resumed",
    RecordedAction.PLAN_ABORT: "aborted",
}


def _actor_problems(identity: Identity) -> list[str]:
    problem = actor_problem(identity.name)
    return [problem] if problem else []


def _audit(
    audit: AuditLog,
    plan: RolloutPlan,
    identity: Identity,
    action: RecordedAction,
    reason: str,
    at: datetime,
) -> AuditEntry:
    """The plan change as an audit record: the flag's state before and after is the same,
    and `recorded` keeps it out of the applied changes (soak, last change)."""
    state, percentage = plan.expected_state, plan.expected_percentage
    return audit.record(
        AuditEntry(
            at=at,
            actor=identity.name,
            action=action,
            flag=plan.flag,
            environment=plan.environment,
            from_state=state,
            from_percentage=percentage,
            to_state=state,
            to_percentage=percentage,
            reason=reason[:1000],
            outcome=Outcome.RECORDED,
        )
    )
