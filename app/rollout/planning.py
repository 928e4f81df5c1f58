"""What an action would change, read from the flags now; writes nothing.

`plan_action` works out the exact change (and, for an advance or a restore that goes
up, the guard report); `validate_request` refuses what was typed wrong before anything
is read; `changed_since` says, for each flag no longer where a request expects it, what
it is now and who changed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.audit import AuditEntry, AuditLog, Outcome, who_changed
from app.flags.backend import FlagBackend, FlagSnapshot, UnknownFlag
from app.flags.model import FlagDefinition, FlagState
from app.rollout.action_model import (
    Action,
    ActionConflict,
    ActionPlan,
    ActionRefused,
    ActionRequest,
    EvidenceBefore,
    GuardCheck,
    InvalidRequest,
    Transition,
)
from app.rollout.guards import GuardName, GuardResult
from app.rollout.inputs import actor_problem, environment_problem, flag_key_problem, reason_problem
from app.rollout.ladder import LadderEnd, next_step, previous_step
from app.rollout.undo import DEFAULT_UNDO_WINDOW, undo_verdict

__all__ = ["changed_since", "flag_now", "plan_action", "target_of", "validate_request"]


def plan_action(
    request: ActionRequest,
    backend: FlagBackend,
    check_guards: GuardCheck,
    audit: AuditLog | None = None,
    *,
    now: datetime | None = None,
    undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    evidence_before: EvidenceBefore | None = None,
) -> ActionPlan:
    """The change `request` would make, read from the backend now; writes nothing.

    Raises InvalidRequest (bad input, unknown flag, end of the ladder), ActionRefused /
    ActionConflict (a restore that cannot be done), and lets the backend's ConfigInvalid /
    SourceUnavailable through. A restore needs `audit`; it is judged an undo within
    reason at `now` against `undo_window`, and then reports `evidence_before` (when
    given) instead of the guards of the flags as they are now.
    """
    validate_request(request)
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
        return ActionPlan(request, snapshot, transitions, skipped=skipped)
    if request.action is Action.RESTORE:
        if audit is None:
            raise InvalidRequest("a restore needs the audit log")
        at = now or datetime.now(UTC)
        plan = _plan_restore(
            request, snapshot, audit, check_guards, at, undo_window, evidence_before
        )
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
    return ActionPlan(
        request, snapshot, (transition,), guards, metrics_unavailable=_metrics_unavailable(guards)
    )


def _refuse_read_only(snapshot: FlagSnapshot, key: str) -> None:
    """ActionRefused when the backend shows `key` read-only (with its reason)."""
    reason = snapshot.read_only.get(key)
    if reason is not None:
        raise ActionRefused(f"{key} is read-only in {snapshot.environment}: {reason}")


def target_of(
    action: Action, flag: FlagDefinition, steps: Sequence[float], to: float | None = None
) -> Transition:
    """Where `action` takes `flag` (the ladder's next / previous step, 0 % for a kill, or
    `to`); InvalidRequest at the end of the ladder, for a `to` the wrong way, or for a
    kill of a flag already disabled (nothing to change)."""
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
            if flag.state is FlagState.DISABLED:  # a kill that would change nothing
                raise InvalidRequest("already disabled (0 %): nothing to kill")
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
        flag_now(audit, snapshot, t.flag)
        for t in transitions
        if t.flag not in snapshot.config.flags or not t.starts_from(snapshot.flag(t.flag))
    ]


def flag_now(audit: AuditLog, snapshot: FlagSnapshot, key: str) -> str:
    """What `key` is now in `snapshot` and who changed it last ("ab_testing is now
    rollout 10 %: olga … 25 % → 10 %")."""
    flag = snapshot.config.flags.get(key)
    if flag is None:
        return f"{key} no longer exists in {snapshot.environment}"
    who = who_changed(audit, snapshot.environment, key)
    said = f": {who}" if who is not None else " (by an edit outside the log)"
    return f"{key} is now {flag.state} {flag.percentage:g} %{said}"


def _plan_restore(
    request: ActionRequest,
    snapshot: FlagSnapshot,
    audit: AuditLog,
    check_guards: GuardCheck,
    now: datetime,
    undo_window: timedelta,
    evidence_before: EvidenceBefore | None,
) -> ActionPlan:
    """Every flag the recorded action touched, back to its exact prior state, with the
    verdict on undoing it within reason and the guards of the flags going up."""
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
            raise ActionRefused(
                f"audit record #{entry.id} ({entry.flag}) was not applied ({entry.outcome}): "
                "there is nothing to restore"
            )
    recorded = tuple(_reverted(entry) for entry in group)
    changed = changed_since(audit, snapshot, recorded)
    if changed:
        raise ActionConflict(
            f"cannot restore #{record.id}: changed since — {'; '.join(changed)}", snapshot
        )
    since = audit.entries(
        environment=record.environment,
        since=group[0].at,
        outcomes=(Outcome.APPLIED,),
        limit=100_000,
    )
    undo = undo_verdict(group, since, now, undo_window)
    by_flag = {entry.flag: entry for entry in group}
    up = [t for t in recorded if t.to_percentage > t.from_percentage]
    guards: list[GuardResult] = []
    unavailable = False
    for t in up:
        if undo.allowed and evidence_before is not None:
            found = evidence_before(snapshot, by_flag[t.flag])
        else:
            found = check_guards(snapshot, t.flag)
        unavailable = unavailable or _metrics_unavailable(found)
        guards.extend(found if len(up) == 1 else [replace(g, flag=t.flag) for g in found])
    return ActionPlan(
        request,
        snapshot,
        recorded,
        tuple(guards),
        metrics_unavailable=unavailable,
        undo=undo if up else None,
    )


def _reverted(entry: AuditEntry) -> Transition:
    """The way back from what `entry` applied; ActionRefused when it does not know a state."""
    if entry.from_state is None or entry.to_state is None:
        raise ActionRefused(
            f"audit record #{entry.id} ({entry.flag}) does not know the flag's state: "
            "there is nothing to restore"
        )
    return Transition(
        entry.flag, entry.to_state, entry.to_percentage, entry.from_state, entry.from_percentage
    )


def _metrics_unavailable(guards: Sequence[GuardResult]) -> bool:
    """Whether no metrics source answered the guards: their freshness measured nothing."""
    return any(g.name == GuardName.DATA_FRESH and g.value is None for g in guards)


def validate_request(request: ActionRequest) -> None:
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
