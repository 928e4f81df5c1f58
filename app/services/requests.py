"""What the Requests page shows of change requests (four-eyes approval), and what each
person may do with each one: plain functions over `ChangeRequest`, no Streamlit.

A person sees three lists: the pending requests of others ("Waiting for you" when they
may decide, else "Waiting for an operator"), their own pending ones (which only they
may cancel), and the recently decided. Nobody is offered Approve on their own request,
a viewer is offered nothing, and a request that overrides failed guards is offered for
approval to admins only; the approval service refuses all of these again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from app.approvals.model import ChangeRequest, RequestStatus, same_person
from app.approvals.service import EXPIRY_ACTOR, Decision
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from app.text import format_duration

__all__ = [
    "APPROVAL_SETTING",
    "STATUS_LABELS",
    "DecisionNotice",
    "Permissions",
    "RequestCard",
    "RequestsBoard",
    "approval_off_text",
    "decision_notice",
    "decision_text",
    "expiry_text",
    "guards_at_request",
    "pending_badges",
    "pending_summary",
    "permissions",
    "requests_board",
    "stale_text",
]

#: the setting that names the environments where a change waits for a second person
APPROVAL_SETTING = "ROLLOUT_APPROVAL_ENVIRONMENTS"

STATUS_LABELS: dict[RequestStatus, str] = {
    RequestStatus.PENDING: "⏳ pending",
    RequestStatus.APPROVED: "👍 approved, applying",
    RequestStatus.APPLIED: "✅ approved and applied",
    RequestStatus.FAILED: "⚠️ approved, not applied",
    RequestStatus.REJECTED: "✖️ rejected",
    RequestStatus.CANCELLED: "↩️ cancelled",
    RequestStatus.EXPIRED: "⌛ expired",
}


@dataclass(frozen=True)
class Permissions:
    """The buttons a person gets on one request, and why not the others (`why_not`,
    empty when every button the request can have is offered)."""

    approve: bool = False
    reject: bool = False
    cancel: bool = False
    why_not: str = ""


def permissions(change: ChangeRequest, identity: Identity) -> Permissions:
    """Approve / Reject for an operator on someone else's pending request (Approve of an
    override for admins only), Cancel for the requester; nothing on a decided request
    nor for a viewer."""
    if change.status is not RequestStatus.PENDING:
        return Permissions()
    if identity.role.rank < Role.OPERATOR.rank:
        return Permissions(why_not="Deciding on a request needs the operator role.")
    if same_person(change.requester, identity.name):
        return Permissions(
            cancel=True, why_not="Your own request: another operator must approve it."
        )
    if change.override and identity.role is not Role.ADMIN:
        return Permissions(
            reject=True, why_not="It overrides failed guards: only an admin may approve it."
        )
    return Permissions(approve=True, reject=True)


def expiry_text(change: ChangeRequest, now: datetime) -> str:
    """'asked 5 min ago · expires in 23 h 55 min (2026-12-03 13:00 UTC)'."""
    asked = f"asked {_ago(now - change.created_at)}"
    left = (change.expires_at - now).total_seconds()
    when = f"{change.expires_at:%Y-%m-%d %H:%M} UTC"
    if left <= 0:
        return f"{asked} · expired at {when}"
    return f"{asked} · expires in {format_duration(left)} ({when})"


def decision_text(change: ChangeRequest, now: datetime) -> str:
    """Who decided a request, when, and what they said: 'rejected by bob 3 min ago:
    “wait for Monday”', 'approved by bob 1 min ago', 'expired 2 h ago'. What stopped
    a failed apply is the request's `detail`, shown beside it."""
    verb = _VERBS[change.status]
    by = ""
    if change.decided_by and change.decided_by != EXPIRY_ACTOR:
        by = f" by {change.decided_by}"
    if change.decided_at is not None:
        by += f" {_ago(now - change.decided_at)}"
    said = f"{verb}{by}"
    comment = change.comment.strip()
    if comment and comment not in _DEFAULT_COMMENTS:
        said += f": “{comment}”"
    return said


def _ago(age: timedelta) -> str:
    """'just now' under ten seconds, else '3 min ago'."""
    seconds = age.total_seconds()
    return "just now" if seconds < 10 else f"{format_duration(seconds)} ago"


_VERBS: dict[RequestStatus, str] = {
    RequestStatus.PENDING: "asked",
    RequestStatus.APPROVED: "approved",
    RequestStatus.APPLIED: "approved",
    RequestStatus.FAILED: "approved",
    RequestStatus.REJECTED: "rejected",
    RequestStatus.CANCELLED: "cancelled",
    RequestStatus.EXPIRED: "expired",
}
#: what the approval service records when the person said nothing
_DEFAULT_COMMENTS = frozenset({"approved", "cancelled", "not decided in time"})


def stale_text(change: ChangeRequest, versions: Mapping[str, str]) -> str:
    """For a pending request: the flags changed since it was asked (an approval would
    apply nothing), '' when none did. `versions` are the flags' versions now."""
    if change.status is not RequestStatus.PENDING:
        return ""
    changed = [f for f in change.flags if versions.get(f) != change.versions.get(f)]
    if not changed:
        return ""
    return (
        f"{', '.join(changed)} changed since this request was made: approving it now "
        "applies nothing. Ask for a fresh request."
    )


def guards_at_request(change: ChangeRequest) -> tuple[GuardResult, ...]:
    """The guard report stored with the request, as guard results for `guard_table`."""
    return tuple(GuardResult.from_json(g) for g in change.guards)


@dataclass(frozen=True)
class RequestCard:
    """One request as the page draws it."""

    change: ChangeRequest
    title: str
    status: str
    asked: str
    decided: str
    #: what stopped the apply of an approved request ('' otherwise)
    detail: str
    stale: str
    allowed: Permissions

    @property
    def id(self) -> str:
        return self.change.id


@dataclass(frozen=True)
class RequestsBoard:
    """The three lists of the Requests page, newest first."""

    waiting_heading: str
    waiting: tuple[RequestCard, ...]
    mine: tuple[RequestCard, ...]
    decided: tuple[RequestCard, ...]


def requests_board(
    requests: Iterable[ChangeRequest],
    identity: Identity,
    now: datetime,
    versions: Mapping[str, Mapping[str, str]] | None = None,
    *,
    decided_within: timedelta = timedelta(days=7),
    decided_limit: int = 20,
) -> RequestsBoard:
    """Pending requests of others, the person's own pending ones, and at most
    `decided_limit` decided within `decided_within`. `versions` (environment → flag →
    version now) lets a pending request say that its flag changed since."""
    waiting: list[RequestCard] = []
    mine: list[RequestCard] = []
    decided: list[RequestCard] = []
    for change in sorted(requests, key=_newest_first):
        card = _card(change, identity, now, (versions or {}).get(change.environment, {}))
        if change.status is RequestStatus.PENDING:
            own = same_person(change.requester, identity.name)
            (mine if own else waiting).append(card)
        elif len(decided) < decided_limit and now - _decided_at(change) <= decided_within:
            decided.append(card)
    heading = (
        "Waiting for you" if identity.role.rank >= Role.OPERATOR.rank else "Waiting for an operator"
    )
    return RequestsBoard(heading, tuple(waiting), tuple(mine), tuple(decided))


def _newest_first(change: ChangeRequest) -> tuple[float, int]:
    return (-change.created_at.timestamp(), -int(change.id) if change.id.isdigit() else 0)


def _decided_at(change: ChangeRequest) -> datetime:
    return change.decided_at or change.created_at


def _card(
    change: ChangeRequest, identity: Identity, now: datetime, versions: Mapping[str, str]
) -> RequestCard:
    return RequestCard(
        change=change,
        title=_title(change),
        status=STATUS_LABELS[change.status],
        asked=f"{change.requester} {expiry_text(change, now)}"
        if change.status is RequestStatus.PENDING
        else f"{change.requester} asked {change.created_at:%Y-%m-%d %H:%M} UTC",
        decided="" if change.status is RequestStatus.PENDING else decision_text(change, now),
        detail=change.detail,
        stale=stale_text(change, versions) if versions else "",
        allowed=permissions(change, identity),
    )


def _title(change: ChangeRequest) -> str:
    """'#12 · production · advance ab_testing 25 % → 50 %' (an override says so)."""
    what = str(change.action).replace("_", " ")
    if len(change.transitions) == 1:
        t = change.transitions[0]
        what += f" {t.flag} {t.from_percentage:g} % → {t.to_percentage:g} %"
    else:
        what += f" of {len(change.transitions)} flags"
    if change.override:
        what += " (overriding failed guards)"
    return f"#{change.id} · {change.environment} · {what}"


def pending_badges(pending: Mapping[str, ChangeRequest]) -> dict[str, str]:
    """Per flag with a pending request, the overview's marker: '⏳ #12 → 50 %'."""
    badges = {}
    for flag, change in pending.items():
        target = next((t for t in change.transitions if t.flag == flag), None)
        where = f" → {target.to_percentage:g} %" if target is not None else ""
        badges[flag] = f"⏳ #{change.id}{where}"
    return badges


def pending_summary(pending: Mapping[str, ChangeRequest], environment: str) -> str:
    """'2 change requests wait for approval in production: #12 ab_testing, #13 …', ''
    when none does."""
    changes = {c.id: c for c in pending.values()}
    if not changes:
        return ""
    ordered = sorted(changes.values(), key=_newest_first)
    listed = ", ".join(f"#{c.id} {' + '.join(c.flags)}" for c in ordered[:5])
    more = f" and {len(ordered) - 5} more" if len(ordered) > 5 else ""
    noun = "change request waits" if len(ordered) == 1 else "change requests wait"
    return f"{len(ordered)} {noun} for approval in {environment}: {listed}{more}"


@dataclass(frozen=True)
class DecisionNotice:
    """How the page shows a decision's outcome."""

    kind: Literal["success", "warning", "error"]
    text: str


def decision_notice(decision: Decision) -> DecisionNotice:
    """Success when done, a warning for a conflict (someone changed the flag or the
    request), an error otherwise; the text is the decision's own message."""
    if decision.ok:
        result = decision.result
        if result is not None and result.applied and result.plan is not None:
            diff = "; ".join(t.diff for t in result.plan.transitions)
            return DecisionNotice("success", f"{decision.message}: {diff}")
        return DecisionNotice("success", decision.message)
    if decision.exit_code is ExitCode.CONFLICT:
        return DecisionNotice("warning", decision.message)
    return DecisionNotice("error", decision.message)


def approval_off_text(environments: Sequence[str], demo: bool) -> str:
    """What the page says when no environment needs a second person."""
    names = ", ".join(environments) or "none configured"
    why = (
        "Demo mode has one person, so approval is off unless "
        f"`{APPROVAL_SETTING}` is set explicitly."
        if demo
        else f"`{APPROVAL_SETTING}` is an empty list."
    )
    return (
        f"No environment needs approval: advances apply at once in every environment "
        f'({names}). {why} Set it to a JSON list such as `["production"]` to make an '
        "advance or an override there wait for a second operator."
    )
