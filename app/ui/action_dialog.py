"""The guarded action buttons and their confirmation dialog, shared by the pages.

Buttons are shown only to roles that may use them, but the decision is the action
function's: `Runtime.execute` authorises again on the server. Every button says where
it goes ("Roll back to 10 %"). A dialog plans the action once, when it opens, from the
flags as they are then, and shows that exact plan in its title and body; Confirm sends
that plan (`confirmed`) with the versions it was made on, so what the dialog shows is
what the action does, or the action is refused as a conflict naming who changed what.
When the flag changed since the page was drawn, the dialog says so ("changed since you
looked"). A dialog makes one idempotency key when it opens (a double click applies once).

In an environment that needs a second person (`ROLLOUT_APPROVAL_ENVIRONMENTS`), a change
that would wait (an advance, a restore that goes up, an override) says so before it is
confirmed, its button reads "Request approval", and confirming makes a change request
(exit 5) instead of applying: the page then links to it on the Requests page. Rollback,
kill and emergency rollback never wait.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd
import streamlit as st

from app.approvals.store import ApprovalsUnavailable
from app.audit import AuditEntry, Outcome, who_changed
from app.flags.backend import FlagSnapshot
from app.rollout import inputs as rules
from app.rollout.action_model import (
    Action,
    ActionPlan,
    ActionRequest,
    ActionResult,
    InvalidRequest,
    Transition,
)
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.planning import target_of
from app.rollout.roles import Identity, Role
from app.runtime import Runtime
from app.text import escape_markdown, format_age, format_duration, format_guard_values
from app.ui.pending_requests import REQUESTS_PAGE

__all__ = [
    "ActionOutcome",
    "action_buttons",
    "approval_label",
    "button_label",
    "emergency_button",
    "guard_table",
    "reason_problem",
    "restorable",
    "restore_button",
    "restore_history",
    "show_last_outcome",
]

_OUTCOME = "rollout_last_outcome"
_DIALOG = "rollout-dialog-"
_SEEN = "rollout-seen-"
_NAMES = {
    Action.ADVANCE: "Advance",
    Action.ROLLBACK: "Roll back",
    Action.KILL: "Kill",
    Action.EMERGENCY: "Emergency rollback",
    Action.RESTORE: "Restore",
}
_ICONS = {
    Action.ADVANCE: "⏫",
    Action.ROLLBACK: "⏬",
    Action.KILL: "🛑",
    Action.EMERGENCY: "🚨",
    Action.RESTORE: "↩️",
}


@dataclass(frozen=True)
class ActionOutcome:
    """What the last action did, kept in the session for the page's next run: the words,
    its audit record, the change request it became. An action on several flags that was
    no change request lists each flag's change in `environment`; an applied emergency
    rollback is `restorable` (offered Restore until dismissed)."""

    applied: bool
    code: ExitCode
    text: str
    audit_id: str | None
    request_id: str | None
    environment: str = ""
    flags: tuple[tuple[str, str], ...] = ()  # (flag, its diff)
    restorable: bool = False


@dataclass(frozen=True)
class _Dialog:
    """What a dialog planned when it opened: the plan (None, with `error`, when it could
    not be made), a note when the flag changed since the page was drawn, and whether
    confirming makes a change request."""

    plan: ActionPlan | None
    error: str
    note: str
    waits: bool


def button_label(action: Action, transitions: Sequence[Transition], environment: str = "") -> str:
    """Where a button goes: "Advance to 25 %", "Roll back to 1 %", "Kill (0 %, disabled)",
    "Kill 5 flags in production", "Restore 3 flags"."""
    if action is Action.EMERGENCY:
        return f"Kill {len(transitions)} flag{'s' * (len(transitions) != 1)} in {environment}"
    if action is Action.RESTORE:
        if len(transitions) == 1:
            t = transitions[0]
            return f"Restore {t.flag} to {t.to_state} {t.to_percentage:g} %"
        return f"Restore {len(transitions)} flags to their prior state"
    (t,) = transitions
    if action is Action.KILL:
        return "Kill (0 %, disabled)"
    verb = "Advance" if action is Action.ADVANCE else "Roll back"
    return f"{verb} to {t.to_percentage:g} %"


def approval_label(transitions: Sequence[Transition]) -> str:
    """The confirm button of a change that waits for a second person: "Request approval:
    ab_testing 25 % → 50 %", "Request approval: 3 flags"."""
    if len(transitions) == 1:
        t = transitions[0]
        return f"Request approval: {t.flag} {t.from_percentage:g} % → {t.to_percentage:g} %"
    return f"Request approval: {len(transitions)} flags"


def reason_problem(reason: str) -> str | None:
    """Why a typed reason cannot be sent, in the action function's words (too long:
    refused, never cut); None while the box is still empty."""
    if not reason.strip():
        return None
    problem = rules.reason_problem(reason)
    return problem[:1].upper() + problem[1:] if problem else None


def guard_table(guards: Sequence[GuardResult], *, warnings: bool = False) -> pd.DataFrame:
    """The guard report as rows a reader scans: verdict, guard, value, threshold, why. A
    failed guard is ❌, or ⚠️ where it only warns (`warnings`: an undo's evidence); a flag
    name keeps its underscores ("ab_testing: soak time")."""
    failed = "⚠️" if warnings else "❌"
    return pd.DataFrame(
        {
            "": ["✅" if g.passed else failed for g in guards],
            "Guard": [_guard_name(g) for g in guards],
            "Value": [format_guard_values(g)[0] for g in guards],
            "Threshold": [format_guard_values(g)[1] for g in guards],
            "Detail": [g.detail for g in guards],
        }
    )


def _guard_name(guard: GuardResult) -> str:
    """'soak time'; 'ab_testing: soak time' in a report on several flags."""
    name = str(guard.name).replace("_", " ")
    return f"{guard.flag}: {name}" if guard.flag else name


def action_buttons(
    rt: Runtime,
    identity: Identity,
    environment: str,
    flag: str,
    versions: Mapping[str, str],
    actions: Sequence[Action] = (Action.ADVANCE, Action.ROLLBACK, Action.KILL),
    *,
    snapshot: FlagSnapshot | None = None,
) -> None:
    """`actions` (Advance / Roll back / Kill) for operators, each labelled with where it goes (from
    `snapshot`, the flags as the page shows them); nothing for viewers, and for a read-only
    flag (a flag server's flag the dashboard cannot map) the reason instead."""
    if identity.role.rank < Role.OPERATOR.rank:
        st.caption("Actions need the operator role.")
        return
    snapshot = snapshot or rt.backend.load(environment)
    locked = snapshot.read_only.get(flag)
    if locked is not None:  # never guessed: changed where it is defined, not here
        st.info(
            f"🔒 Read-only here: {locked}. Change it in the flag server itself; the "
            "dashboard shows it, counts it in the health and phase views, and leaves it out "
            "of an emergency rollback.",
            icon="ℹ️",
        )
        return
    definition = snapshot.flag(flag)
    seen_key = f"{_SEEN}{environment}-{flag}"
    # what this session's page showed last time it was drawn (a click reruns the page
    # on the fresh state: the dialog compares with what the person was looking at)
    seen: str | None = st.session_state.get(seen_key, versions.get(flag))
    columns = st.columns(len(actions))
    steps = snapshot.config.global_.rollout_steps
    not_offered: list[str] = []  # said in full below: a narrow button would cut it
    for column, action in zip(columns, actions, strict=True):
        kind: Literal["primary", "secondary"] = "primary" if action is Action.KILL else "secondary"
        why = ""
        try:
            label = button_label(action, (target_of(action, definition, steps),))
        except InvalidRequest as end:
            label, why = _NAMES[action], str(end)
            not_offered.append(f"{_NAMES[action]}: {why}")
        clicked = column.button(
            f"{_ICONS[action]} {label}",
            key=f"open-{action}",
            type=kind,
            width="stretch",
            disabled=bool(why),
            help=why or None,
        )
        if clicked:
            request = ActionRequest(action, environment, "(preview)", identity, flag=flag)
            _open(rt, identity, request, seen)
    st.session_state[seen_key] = versions.get(flag)
    if not_offered:
        st.caption("Not offered: " + "; ".join(not_offered) + ".")
    if Action.ADVANCE in actions and rt.approvals.needed_in(environment):
        st.caption(
            f"✋ In {environment} an advance waits for a second operator's approval "
            "(Requests page); a rollback or kill applies at once."
        )


def emergency_button(rt: Runtime, identity: Identity, environment: str) -> None:
    """The big red button: kill every experimental flag of `environment`. Always drawn
    for an operator, even when the flags cannot be read (the dialog then says why)."""
    if identity.role.rank < Role.OPERATOR.rank:
        return
    if st.button("🚨 Emergency rollback", type="primary", key="open-emergency"):
        _open(rt, identity, ActionRequest(Action.EMERGENCY, environment, "(preview)", identity))


def restore_label(entry: AuditEntry, flags: int) -> str:
    """ "↩️ Restore #8", or "↩️ Restore #9: restores all 5 flags" for one action on 5."""
    if flags > 1:
        return f"↩️ Restore #{entry.id}: restores all {flags} flags"
    return f"↩️ Restore #{entry.id}"


def restorable(entry: AuditEntry) -> bool:
    """Whether a Restore is offered for `entry`: an applied change of a flag."""
    return (
        entry.outcome is Outcome.APPLIED
        and entry.from_state is not None
        and entry.to_state is not None
        and str(entry.action) in set(Action)
    )


def restore_button(
    rt: Runtime, identity: Identity, entry: AuditEntry, flags: int = 1, *, key: str = ""
) -> None:
    """ "Restore" for an applied audit record, for operators: puts every flag its action
    touched (`flags` of them) back to its prior state, through the same dialog."""
    if identity.role.rank < Role.OPERATOR.rank or not restorable(entry):
        return
    if st.button(restore_label(entry, flags), key=key or f"open-restore-{entry.id}"):
        request = ActionRequest(
            Action.RESTORE, entry.environment, "(preview)", identity, restore_of=entry.id
        )
        _open(rt, identity, request)


def restore_history(rt: Runtime, identity: Identity, environment: str, flag: str) -> None:
    """Under a flag's history: its newest applied changes, each with Restore (the whole
    action for an emergency rollback), for operators."""
    if identity.role.rank < Role.OPERATOR.rank:
        return
    changes = [
        e
        for e in rt.audit.entries(
            flag=flag, environment=environment, outcomes=(Outcome.APPLIED,), limit=20
        )
        if restorable(e)
    ][:5]
    if not changes:
        return
    hours = format_duration(rt.settings.undo_window_hours * 3600)
    st.caption(
        f"Restore puts back what a change altered. Within {hours} of it, while the flag has "
        "not moved since, an operator may restore it without an admin's override."
    )
    for entry in changes:
        group = rt.audit.action_group(entry)
        said, button = st.columns([3, 2])
        said.markdown(
            f"#{entry.id} · {entry.action} by {escape_markdown(entry.actor)} · "
            f"{entry.at:%Y-%m-%d %H:%M} UTC · {entry.from_text} → {entry.to_text}"
        )
        with button:
            restore_button(rt, identity, group[0], len(group), key=f"history-restore-{entry.id}")


def show_last_outcome() -> None:
    """What the last action did, with a link to its audit record. An emergency rollback's
    outcome lists every flag it changed, each linked to its detail, and offers Restore
    until dismissed; other outcomes are shown once."""
    outcome: ActionOutcome | None = st.session_state.get(_OUTCOME)
    if outcome is None:
        return
    if not outcome.restorable:
        st.session_state.pop(_OUTCOME, None)
    text = outcome.text
    if outcome.applied:
        st.success(text, icon="✅")
    elif outcome.request_id:
        st.info(text, icon="⏳")
        st.page_link(
            REQUESTS_PAGE,
            label=f"Change request #{outcome.request_id} on the Requests page",
            icon="✋",
            query_params={"id": outcome.request_id},
        )
    elif outcome.code is ExitCode.CONFLICT:
        st.warning(text, icon="🔁")
    else:
        st.error(text, icon="⛔")
    for flag, diff in outcome.flags:
        st.page_link(
            "../pages/flag_detail.py",
            label=diff,
            icon="🔎",
            query_params={"env": outcome.environment, "flag": flag},
        )
    if outcome.audit_id:
        st.page_link(
            "../pages/audit.py",
            label=f"Audit record {outcome.audit_id}",
            icon="📜",
            query_params={"id": outcome.audit_id},
        )
    if outcome.restorable:
        from app.ui.widgets import current_identity, runtime

        rt = runtime()
        identity = current_identity(rt)
        restore_col, dismiss_col = st.columns([3, 1])
        label = f"↩️ Restore #{outcome.audit_id}: restores all {len(outcome.flags)} flags"
        if restore_col.button(label, key="outcome-restore"):
            request = ActionRequest(
                Action.RESTORE,
                outcome.environment,
                "(preview)",
                identity,
                restore_of=outcome.audit_id,
            )
            _open(rt, identity, request)
        if dismiss_col.button("Dismiss", key="outcome-dismiss"):
            st.session_state.pop(_OUTCOME, None)
            st.rerun()


def _open(rt: Runtime, identity: Identity, request: ActionRequest, seen: str | None = None) -> None:
    """Plan `request` now, once, and open the dialog on that plan."""
    key = uuid.uuid4().hex
    request = replace(request, idempotency_key=key)
    plan: ActionPlan | None = None
    error = ""
    note = ""
    try:
        plan = rt.preview(request)
    except ValueError as refused:
        error = str(refused)
    except OSError as unreadable:
        error = f"flags unreadable: {unreadable}"
    stale = plan is not None and request.flag and plan.snapshot.versions.get(request.flag) != seen
    if stale and request.flag and seen is not None:
        outside = rt.latest_outside_change(request.environment, request.flag)
        who = who_changed(rt.audit, request.environment, request.flag, outside, format_age)
        who = who or "an edit outside the audit log"
        note = f"Changed since you looked: {who}. The dialog shows the flag as it is now."
    # asked once per dialog: the title and the body say the same
    waits = plan is not None and bool(plan.transitions) and rt.approvals.needs_approval(plan)
    if plan is not None and _blocked(plan) and identity.role is not Role.ADMIN:
        waits = False  # refused whatever else is true: never titled "needs approval"
    st.session_state[f"{_DIALOG}{key}"] = _Dialog(plan, error, note, waits)
    title = _title(request, plan)
    if waits:
        title += " (needs approval)"
    st.dialog(title, width="large")(_confirm)(rt, identity, request, key)


def _blocked(plan: ActionPlan) -> bool:
    """Whether guards fail and nothing else lets the plan proceed (only an override)."""
    return bool(plan.guards) and not plan.may_proceed


def _title(request: ActionRequest, plan: ActionPlan | None) -> str:
    name = _NAMES[request.action]
    if request.action is Action.RESTORE:
        name = f"Restore #{request.restore_of}"
    where = request.environment
    if plan is None or not plan.transitions:
        return f"{name} in {where}" + (f": {request.flag}" if request.flag else "")
    if len(plan.transitions) == 1:
        t = plan.transitions[0]
        return f"{name} {t.flag} in {where}: {t.from_percentage:g} % → {t.to_percentage:g} %"
    return f"{name} in {where}: {len(plan.transitions)} flags"


def _confirm(rt: Runtime, identity: Identity, request: ActionRequest, key: str) -> None:
    opened: _Dialog | None = st.session_state.get(f"{_DIALOG}{key}")
    if opened is None:  # already confirmed in this session
        return
    if opened.note:
        st.warning(opened.note, icon="🔁")
    plan = opened.plan
    if plan is None:
        st.error(opened.error)
        return
    waits = opened.waits
    admin = identity.role is Role.ADMIN
    # guards fail and nothing else allows it: an operator is refused whatever else is
    # true, so the dialog says only that (never "creates a change request" as well)
    blocked = _blocked(plan)
    if waits:  # first: what confirming does here
        _approval_notice(rt, plan)
    _undo_notice(plan)
    _show_plan(plan)
    reason = st.text_area(
        "Reason (required: the approver reads it; it goes to the audit log)"
        if waits
        else "Reason (required, goes to the audit log)",
        key="dialog-reason",
    )
    problem = reason_problem(reason)
    if problem:
        st.error(problem)
    override = False
    if blocked:
        if admin:
            override = st.checkbox(
                "Override the failed guards (recorded as an override)", key="dialog-override"
            )
        else:
            failed = ", ".join(_guard_name(g) for g in plan.guards if not g.passed)
            st.error(
                f"Refused: guards failed ({failed}). Only an admin can override: "
                f"{_admins(rt, identity)}."
            )
    if override and not waits and rt.approvals.needed_in(request.environment):
        waits = True  # any override waits where approval is needed
        _approval_notice(rt, plan)
    if override and waits:
        st.caption(f"An override is approved by another admin only: {_admins(rt, identity)}.")
    ready = (
        bool(reason.strip())
        and problem is None
        and (plan.may_proceed or override)
        and bool(plan.transitions)
    )
    undo = request.action is Action.RESTORE and bool(plan.transitions)
    if undo or request.environment in rt.settings.typed_confirmation_environments:
        single = plan.transitions[0].flag if len(plan.transitions) == 1 else None
        wanted = request.flag or single or request.environment
        typed = st.text_input(f"Type **{wanted}** to confirm", key="dialog-typed")
        ready = ready and typed.strip() == wanted
    if not plan.transitions:
        label = f"Confirm: {_ICONS[request.action]} Nothing to change"
    elif waits:
        label = f"✋ {approval_label(plan.transitions)}"
    else:
        label = (
            f"Confirm: {_ICONS[request.action]} "
            f"{button_label(request.action, plan.transitions, request.environment)}"
        )
    if st.button(label, type="primary", disabled=not ready, key="dialog-confirm"):
        final = replace(
            request,
            reason=reason,
            override_guards=override,
            confirmed=plan.transitions,
            expected_versions={
                t.flag: plan.snapshot.versions.get(t.flag, "") for t in plan.transitions
            },
        )
        result = rt.execute(final)
        st.session_state.pop(f"{_DIALOG}{key}", None)
        st.session_state[_OUTCOME] = _summary(result)
        st.rerun()


def _admins(rt: Runtime, identity: Identity) -> str:
    """Who could override or approve an override, besides `identity`: "bob@example.com",
    or that there is none (the demo's single local operator)."""
    settings = rt.settings
    if settings.default_role is Role.ADMIN and not settings.demo:
        return "every signed-in user is an admin here"
    names = sorted(
        name
        for name, role in settings.roles.items()
        if role is Role.ADMIN and name.lower() != identity.name.lower()
    )
    if not names:
        return "no admin is configured here (ROLLOUT_ROLES), so nobody can"
    return "admins here: " + ", ".join(escape_markdown(name) for name in names)


def _undo_notice(plan: ActionPlan) -> None:
    """A restore: whether it is an undo within reason, and why (the guards shown are then
    the evidence from before the change it undoes)."""
    undo = plan.undo
    if undo is None:
        return
    if undo.allowed:
        st.info(
            f"**Undo within reason:** {escape_markdown(undo.reason)}. An operator may "
            "restore it without an override; the guards below are the evidence from "
            "before that change (the state this restores), shown as warnings.",
            icon="↩️",
        )
    else:
        st.warning(
            f"**Not an undo within reason:** {escape_markdown(undo.reason)}. The guards "
            "of the flags as they are now decide.",
            icon="⚠️",
        )


def _approval_notice(rt: Runtime, plan: ActionPlan) -> None:
    """Before confirming: this change waits for another operator, and what is pending
    for its flags already."""
    environment = plan.request.environment
    hours = format_duration(rt.settings.request_expiry_hours * 3600)
    st.info(
        f"**A second operator must approve this.** In {environment}, this change waits "
        "for another operator: confirming creates a **change request**, and nothing "
        "changes until someone else approves it on the Requests page (it expires after "
        f"{hours}). The guards are checked again when it is approved.",
        icon="✋",
    )
    try:
        pending = rt.approvals.pending_flags(environment)
    except ApprovalsUnavailable as error:
        st.warning(f"{error}: the request cannot be made now.", icon="⚠️")
        return
    waiting = {c.id: c for t in plan.transitions if (c := pending.get(t.flag)) is not None}
    for change in waiting.values():
        st.caption(
            f"Change request #{change.id} by {escape_markdown(change.requester)} already "
            f"waits for {escape_markdown(', '.join(change.flags))}: "
            f"{escape_markdown(change.diff)}."
        )


def _show_plan(plan: ActionPlan) -> None:
    if not plan.transitions:
        st.info("Nothing to change: no flag is in state rollout.")
        return
    st.markdown("**Exact change**")
    st.code("\n".join(t.diff for t in plan.transitions), language=None)
    if not plan.guards:
        return
    warned = plan.undo is not None and plan.undo.allowed
    failed = sum(not g.passed for g in plan.guards)
    if warned:
        said = "all guards passed then" if not failed else f"{failed} warning(s)"
        st.markdown(f"**Evidence before the change it undoes** — {said}")
    else:
        verdict = "all guards pass" if plan.guards_passed else "some guards FAIL"
        st.markdown(f"**Guard report** — {verdict}")
    st.dataframe(guard_table(plan.guards, warnings=warned), hide_index=True, width="stretch")


def _summary(result: ActionResult) -> ActionOutcome:
    transitions = result.plan.transitions if result.plan else ()
    diff = "; ".join(t.diff for t in transitions)
    request = result.plan.request if result.plan else None
    if result.applied:
        text = f"Applied: {diff}" + (
            " (this key was already used: not applied twice)" if result.replayed else ""
        )
    elif result.exit_code is ExitCode.CONFLICT:
        text = f"Not applied: {result.error}. The page now shows the fresh state."
    elif result.exit_code is ExitCode.REQUESTED and result.change_request is not None:
        change = result.change_request
        before = "; ".join(
            f"{t.flag} stays at {t.from_state} {t.from_percentage:g} %" for t in transitions
        )
        text = (
            f"Change request #{change.id} created: waits for another operator. "
            f"Nothing changed yet ({before}) until someone else approves it."
        )
    else:
        text = f"Not applied: {result.error}"
    audit_id = result.audit[0].id if result.audit else None
    request_id = result.change_request.id if result.change_request else None
    if request is None or len(transitions) < 2 or request_id is not None:
        return ActionOutcome(result.applied, result.exit_code, text, audit_id, request_id)
    if result.applied:
        text = f"Applied: {len(transitions)} flags changed in {request.environment}:"
    return ActionOutcome(
        result.applied,
        result.exit_code,
        text,
        audit_id,
        request_id,
        environment=request.environment,
        flags=tuple((t.flag, t.diff) for t in transitions),
        restorable=result.applied and request.action is Action.EMERGENCY,
    )
