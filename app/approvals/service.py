"""Request, approve, reject, cancel and expire change requests; every step an audit record.

`Approvals` is the gate `execute_action` consults: in an environment that needs a second
person, a change that raises exposure (or overrides a guard) is stored as a request
instead of applied. An approval moves the request from pending to approved (a
conditional update: of two approvers at once, one wins) and then applies it through the
same `execute` the buttons use, with the approver as the actor, the transitions and flag
versions of request time as what must still hold, and the guards checked again. The
requester can never approve their own request; nothing applies twice (the apply's
idempotency key is the request's id).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.approvals.model import ChangeRequest, RequestStatus, raises_exposure, same_person
from app.approvals.store import ApprovalsUnavailable, DuplicateRequest, RequestStore
from app.audit import AuditEntry, AuditLog, Outcome
from app.quoting import quoted
from app.rollout.action_audit import transition_entry
from app.rollout.action_model import ActionPlan, ActionRequest, ActionResult
from app.rollout.approval_gate import ApprovalGate
from app.rollout.exit_codes import ExitCode
from app.rollout.inputs import reason_problem
from app.rollout.roles import Identity, NotAuthorized, Role, require

__all__ = ["EXPIRY_ACTOR", "Approvals", "Decision", "request_of_reason"]

#: the actor of the audit record of a request that expired
EXPIRY_ACTOR = "rollout-dashboard (expiry)"
#: an approved request whose apply left no trace after this long was interrupted
_INTERRUPTED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Decision:
    """What an approve / reject / cancel did: `message` says it to the person."""

    exit_code: ExitCode
    message: str
    change: ChangeRequest | None = None
    result: ActionResult | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code is ExitCode.DONE


Execute = Callable[[ActionRequest], ActionResult]


class Approvals(ApprovalGate):
    """The change requests of one process: the gate of `execute_action` and the
    decisions on requests."""

    def __init__(
        self,
        store: RequestStore,
        audit: AuditLog,
        environments: Collection[str],
        expiry: timedelta = timedelta(hours=24),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.audit = audit
        self.environments = frozenset(environments)
        self.expiry = expiry
        self._now = now

    # -- the gate ----------------------------------------------------------------

    def needed_in(self, environment: str) -> bool:
        return environment in self.environments

    def needs_approval(self, plan: ActionPlan) -> bool:
        """An advance, a restore that goes up, or any guard override, in an environment
        that needs a second person; never a rollback, kill or emergency rollback."""
        if not self.needed_in(plan.request.environment):
            return False
        return plan.request.override_guards or any(raises_exposure(t) for t in plan.transitions)

    def open(self, plan: ActionPlan) -> tuple[ChangeRequest, tuple[AuditEntry, ...]]:
        request = plan.request
        at = self._now()
        versions = {t.flag: plan.snapshot.versions.get(t.flag, "") for t in plan.transitions}
        change = ChangeRequest(
            created_at=at,
            expires_at=at + self.expiry,
            requester=request.identity.name,
            requester_account=request.identity.account,
            environment=request.environment,
            action=request.action,
            reason=request.reason.strip(),
            transitions=plan.transitions,
            versions=versions,
            idempotency_key=request.idempotency_key,
            flag=request.flag,
            to_percentage=request.to_percentage,
            override=request.override_guards,
            restore_of=request.restore_of,
            guards=tuple(g.as_json() for g in plan.guards),
        )
        try:
            stored = self.store.add(change)
        except DuplicateRequest as duplicate:  # a double click: the request made first
            return duplicate.existing, ()
        steps = self._step(stored, Outcome.REQUESTED, stored.requester, stored.reason, at)
        return stored, steps

    def ticket_problem(self, request: ActionRequest) -> str | None:
        assert request.approved_request is not None
        change = self.store.get(request.approved_request)
        if change is None:
            return f"no change request #{quoted(request.approved_request)}"
        if change.status is not RequestStatus.APPROVED:
            return f"change request #{change.id} is {change.status}, not approved"
        if _asked_by(change, request.identity):
            return f"change request #{change.id}: nobody approves their own request"
        if change.decided_by is None or not same_person(change.decided_by, request.identity.name):
            return f"change request #{change.id} was approved by someone else"
        if (
            request.idempotency_key != _apply_key(change)
            or request.environment != change.environment
            or request.action is not change.action
            or request.confirmed != change.transitions
        ):
            return f"change request #{change.id} approved another change than this one"
        return None

    # -- decisions ---------------------------------------------------------------

    def approve(
        self,
        request_id: str,
        identity: Identity,
        execute: Execute,
        comment: str = "",
        digest: str | None = None,
    ) -> Decision:
        """Approve request `request_id` and apply it through `execute` with the guards
        checked again; `digest` (what the approver saw) must still match its content."""
        return _unless_unavailable(self._approve, request_id, identity, execute, comment, digest)

    def reject(self, request_id: str, identity: Identity, comment: str) -> Decision:
        """Reject request `request_id`, saying why (`comment` is required)."""
        return _unless_unavailable(self._reject, request_id, identity, comment)

    def cancel(self, request_id: str, identity: Identity, comment: str = "") -> Decision:
        """Withdraw request `request_id`: only its requester may."""
        return _unless_unavailable(self._cancel, request_id, identity, comment)

    def _approve(
        self,
        request_id: str,
        identity: Identity,
        execute: Execute,
        comment: str,
        digest: str | None,
    ) -> Decision:
        problem = reason_problem(comment) if comment.strip() else None
        if problem:
            return Decision(ExitCode.USAGE, f"comment: {problem}")
        found = self._decidable(request_id, identity, "approving a change request", approving=True)
        if isinstance(found, Decision):
            return found
        change = found
        if same_person(change.requester, identity.name):
            return Decision(
                ExitCode.REFUSED,
                f"#{change.id} is your own request: another operator must approve it",
                change,
            )
        if _asked_by(change, identity):
            return Decision(
                ExitCode.REFUSED,
                f"#{change.id} was asked from your OS account {identity.account} (as "
                f"{change.requester}): another person must approve it from their own",
                change,
            )
        if change.override and identity.role is not Role.ADMIN:
            return Decision(
                ExitCode.REFUSED,
                f"#{change.id} overrides failed guards: only an admin may approve it",
                change,
            )
        if digest is not None and digest != change.digest:
            return Decision(
                ExitCode.CONFLICT, f"#{change.id} is not the request you looked at", change
            )
        at = self._now()
        if not self.store.move(
            change.id,
            RequestStatus.PENDING,
            RequestStatus.APPROVED,
            by=identity.name,
            at=at,
            comment=comment.strip(),
        ):
            return self._already(change.id, identity, approving=True)
        approved = replace(
            change, status=RequestStatus.APPROVED, decided_by=identity.name, decided_at=at
        )
        self._step(approved, Outcome.APPROVED, identity.name, comment.strip() or "approved", at)
        result = execute(self._application(approved, identity))
        return self._settle(approved, result)

    def _reject(self, request_id: str, identity: Identity, comment: str) -> Decision:
        problem = reason_problem(comment)
        if problem:
            return Decision(ExitCode.USAGE, f"why reject: {problem}")
        found = self._decidable(request_id, identity, "rejecting a change request")
        if isinstance(found, Decision):
            return found
        change = found
        if _asked_by(change, identity):
            return Decision(
                ExitCode.REFUSED, f"#{change.id} is your own request: cancel it instead", change
            )
        return self._close(change, RequestStatus.REJECTED, identity.name, comment.strip())

    def _cancel(self, request_id: str, identity: Identity, comment: str) -> Decision:
        problem = reason_problem(comment) if comment.strip() else None
        if problem:
            return Decision(ExitCode.USAGE, f"comment: {problem}")
        found = self._decidable(request_id, identity, "cancelling a change request")
        if isinstance(found, Decision):
            return found
        change = found
        if not same_person(change.requester, identity.name):
            return Decision(
                ExitCode.REFUSED,
                f"#{change.id} is {change.requester}'s request: only they can cancel it "
                "(reject it instead)",
                change,
            )
        return self._close(
            change, RequestStatus.CANCELLED, identity.name, comment.strip() or "cancelled"
        )

    # -- reading -----------------------------------------------------------------

    def requests(
        self,
        *,
        environment: str | None = None,
        statuses: Collection[RequestStatus] = (),
        limit: int = 500,
    ) -> list[ChangeRequest]:
        """Newest first, after expiring those past due."""
        self.expire_due()
        return self.store.matching(environment=environment, statuses=statuses, limit=limit)

    def pending_flags(self, environment: str) -> dict[str, ChangeRequest]:
        """Per flag of `environment`, its newest pending request not past its expiry. One
        read and no write: every overview refresh asks (expiring is `requests`' work)."""
        now = self._now()
        pending: dict[str, ChangeRequest] = {}
        found = self.store.matching(environment=environment, statuses=[RequestStatus.PENDING])
        for change in (c for c in found if not c.is_due(now)):
            for flag in change.flags:
                pending.setdefault(flag, change)
        return pending

    def expire_due(self) -> int:
        """Expire every pending request past its expiry (an audit record each); how many.
        Also settles approvals interrupted before their apply left a trace."""
        now = self._now()
        expired = 0
        for change in self.store.matching(statuses=[RequestStatus.PENDING, RequestStatus.APPROVED]):
            if change.is_due(now):
                expired += self._close(
                    change, RequestStatus.EXPIRED, EXPIRY_ACTOR, "not decided in time", now
                ).ok
            elif change.status is RequestStatus.APPROVED:
                self._settle_interrupted(change, now)
        return expired

    # -- plumbing ----------------------------------------------------------------

    def _decidable(
        self, request_id: str, identity: Identity, what: str, *, approving: bool = False
    ) -> ChangeRequest | Decision:
        """The pending request `request_id`, or the Decision that says why not (a repeat
        of one's own approval is answered with what it did)."""
        try:
            require(identity, Role.OPERATOR, what)
        except NotAuthorized as error:
            return Decision(ExitCode.REFUSED, str(error))
        change = self.store.get(request_id)
        if change is None:
            return Decision(ExitCode.USAGE, f"no change request #{quoted(request_id)}")
        if change.is_due(self._now()):
            self._close(change, RequestStatus.EXPIRED, EXPIRY_ACTOR, "not decided in time")
            return Decision(
                ExitCode.REFUSED,
                f"#{change.id} expired at {change.expires_at:%Y-%m-%d %H:%M} UTC: "
                "ask for a fresh request",
                replace(change, status=RequestStatus.EXPIRED),
            )
        if change.status is not RequestStatus.PENDING:
            return self._already(change.id, identity, approving=approving)
        return change

    def _already(self, request_id: str, identity: Identity, *, approving: bool) -> Decision:
        """Said when a request is no longer pending: a repeat of one's own approval is
        answered with its outcome (exit 0 when it was applied), anything else refused."""
        change = self.store.get(request_id)
        assert change is not None
        by = f" by {change.decided_by}" if change.decided_by else ""
        said = f"#{change.id} is already {change.status}{by}"
        if change.detail:
            said += f": {change.detail}"
        mine = change.decided_by is not None and same_person(change.decided_by, identity.name)
        done = change.status in (RequestStatus.APPROVED, RequestStatus.APPLIED)
        if approving and mine and done:
            return Decision(ExitCode.DONE, said, change)
        return Decision(ExitCode.REFUSED, said, change)

    def _close(
        self,
        change: ChangeRequest,
        status: RequestStatus,
        by: str,
        comment: str,
        at: datetime | None = None,
    ) -> Decision:
        at = at or self._now()
        if not self.store.move(
            change.id, RequestStatus.PENDING, status, by=by, at=at, comment=comment
        ):
            return Decision(ExitCode.REFUSED, f"#{change.id} was decided meanwhile")
        closed = replace(change, status=status, decided_by=by, decided_at=at, comment=comment)
        self._step(closed, Outcome(str(status)), by, comment, at)
        return Decision(ExitCode.DONE, f"#{change.id} {status}", closed)

    def _application(self, change: ChangeRequest, approver: Identity) -> ActionRequest:
        """The action that applies `change`, by its approver, bound to request time."""
        return ActionRequest(
            action=change.action,
            environment=change.environment,
            reason=_applied_reason(change),
            identity=approver,
            flag=change.flag,
            to_percentage=change.to_percentage,
            idempotency_key=_apply_key(change),
            override_guards=change.override,
            expected_versions=dict(change.versions),
            confirmed=change.transitions,
            restore_of=change.restore_of,
            approved_request=change.id,
        )

    def _settle(self, change: ChangeRequest, result: ActionResult) -> Decision:
        """Record what the apply did on the request."""
        if result.applied:
            self.store.move(change.id, RequestStatus.APPROVED, RequestStatus.APPLIED, detail="")
            applied = replace(change, status=RequestStatus.APPLIED)
            return Decision(ExitCode.DONE, f"#{change.id} approved and applied", applied, result)
        why = result.error or "not applied"
        detail = f"approved, not applied: {why}. Nothing changed; ask for a fresh request"
        self.store.move(change.id, RequestStatus.APPROVED, RequestStatus.FAILED, detail=detail)
        failed = replace(change, status=RequestStatus.FAILED, detail=detail)
        code = result.exit_code if result.exit_code is not ExitCode.DONE else ExitCode.REFUSED
        return Decision(code, f"#{change.id} {detail}", failed, result)

    def _settle_interrupted(self, change: ChangeRequest, now: datetime) -> None:
        """An approval whose process stopped before it recorded the outcome of its apply."""
        if change.decided_at is None or now - change.decided_at < _INTERRUPTED_AFTER:
            return
        entry = self.audit.find_key(_apply_key(change))
        if entry is not None and entry.outcome is Outcome.APPLIED:
            self.store.move(change.id, RequestStatus.APPROVED, RequestStatus.APPLIED, detail="")
        elif entry is None or entry.outcome is not Outcome.PENDING:
            detail = "approved, but the apply was interrupted; ask for a fresh request"
            self.store.move(change.id, RequestStatus.APPROVED, RequestStatus.FAILED, detail=detail)

    def _step(
        self, change: ChangeRequest, outcome: Outcome, actor: str, text: str, at: datetime
    ) -> tuple[AuditEntry, ...]:
        """One audit record per flag of `change` for this step."""
        guards = [dict(g) for g in change.guards] if outcome is Outcome.REQUESTED else []
        entries = [
            transition_entry(
                t,
                at=at,
                actor=actor,
                action=change.action,
                environment=change.environment,
                reason=_step_reason(change, text),
                outcome=outcome,
                override=change.override,
                guards=guards,
            )
            for t in change.transitions
        ]
        return tuple(self.audit.record_many(entries))


def _unless_unavailable(decide: Callable[..., Decision], *args: Any, **kwargs: Any) -> Decision:
    try:
        return decide(*args, **kwargs)
    except ApprovalsUnavailable as error:
        return Decision(ExitCode.UNAVAILABLE, f"{error}: nothing decided")


def _apply_key(change: ChangeRequest) -> str:
    return f"change-request-{change.id}"


def _step_reason(change: ChangeRequest, text: str) -> str:
    """The reason of a step's audit record: 'request #12: looks fine'."""
    return f"request #{change.id}: {text}"


def _applied_reason(change: ChangeRequest) -> str:
    """The reason of the apply's audit record: 'request #12 by alice: steady'."""
    return f"request #{change.id} by {change.requester}: {change.reason}"[:2000]


_REQUEST_REASON = re.compile(r"request #(\d{1,18})(?::| by )")


def request_of_reason(reason: str) -> str | None:
    """The change request an audit record belongs to, read from the reasons written
    above ('request #12: …', 'request #12 by alice: …'); None for others."""
    found = _REQUEST_REASON.match(reason)
    return found.group(1) if found else None


def _asked_by(change: ChangeRequest, identity: Identity) -> bool:
    """Whether `identity` is who asked for `change`: the same name, or the same OS
    account (a terminal that declared another name with `--actor`)."""
    if same_person(change.requester, identity.name):
        return True
    account = change.requester_account
    return account is not None and identity.account is not None and account == identity.account
