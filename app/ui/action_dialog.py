"""The guarded action buttons and their confirmation dialog, shared by the pages.

Buttons are shown only to roles that may use them, but the decision is the action
function's: `Runtime.execute` authorises again on the server. A dialog makes one
idempotency key when it opens (a double click applies once) and carries the flag
versions the page showed (a flag changed meanwhile is refused with its fresh state).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
import streamlit as st

from app.rollout.actions import Action, ActionRequest, ActionResult, ExitCode, Plan
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from app.runtime import Runtime
from app.ui.format import format_guard_values

__all__ = ["action_buttons", "emergency_button", "guard_table", "show_last_outcome"]

_OUTCOME = "rollout_last_outcome"
_LABELS = {
    Action.ADVANCE: "⏫ Advance",
    Action.ROLLBACK: "⏬ Roll back",
    Action.KILL: "🛑 Kill",
    Action.EMERGENCY: "🚨 Emergency rollback",
}


def guard_table(guards: Sequence[GuardResult]) -> pd.DataFrame:
    """The guard report as rows a reader scans: verdict, guard, value, threshold, why."""
    return pd.DataFrame(
        {
            "": ["✅" if g.passed else "❌" for g in guards],
            "Guard": [g.name.replace("_", " ") for g in guards],
            "Value": [format_guard_values(g)[0] for g in guards],
            "Threshold": [format_guard_values(g)[1] for g in guards],
            "Detail": [g.detail for g in guards],
        }
    )


def action_buttons(
    rt: Runtime, identity: Identity, environment: str, flag: str, versions: Mapping[str, str]
) -> None:
    """Advance / Roll back / Kill for operators; nothing for viewers."""
    if identity.role.rank < Role.OPERATOR.rank:
        st.caption("Actions need the operator role.")
        return
    columns = st.columns(3)
    for column, action in zip(columns, (Action.ADVANCE, Action.ROLLBACK, Action.KILL), strict=True):
        kind: Literal["primary", "secondary"] = "primary" if action is Action.KILL else "secondary"
        if column.button(_LABELS[action], key=f"open-{action}", type=kind, width="stretch"):
            _confirm(rt, identity, environment, action, flag, dict(versions), uuid.uuid4().hex)


def emergency_button(rt: Runtime, identity: Identity, environment: str) -> None:
    """The big red button: kill every experimental flag of `environment`."""
    if identity.role.rank < Role.OPERATOR.rank:
        return
    if st.button(_LABELS[Action.EMERGENCY], type="primary", key="open-emergency"):
        _confirm(rt, identity, environment, Action.EMERGENCY, None, None, uuid.uuid4().hex)


def show_last_outcome() -> None:
    """What the last action did, with a link to its audit record; shown once."""
    outcome: dict[str, Any] | None = st.session_state.pop(_OUTCOME, None)
    if outcome is None:
        return
    text = outcome["text"]
    if outcome["applied"]:
        st.success(text, icon="✅")
    elif outcome["code"] == ExitCode.CONFLICT:
        st.warning(text, icon="🔁")
    else:
        st.error(text, icon="⛔")
    if outcome["audit_id"]:
        st.page_link(
            "../pages/audit.py",
            label=f"Audit record {outcome['audit_id']}",
            icon="📜",
            query_params={"id": outcome["audit_id"]},
        )


@st.dialog("Confirm the change", width="large")
def _confirm(
    rt: Runtime,
    identity: Identity,
    environment: str,
    action: Action,
    flag: str | None,
    versions: dict[str, str] | None,
    key: str,
) -> None:
    request = ActionRequest(
        action=action,
        environment=environment,
        reason="(preview)",
        identity=identity,
        flag=flag,
        idempotency_key=key,
        expected_versions=versions,
    )
    try:
        plan = rt.plan(request)
    except ValueError as error:
        st.error(str(error))
        return
    _show_plan(plan)
    reason = st.text_area("Reason (required, goes to the audit log)", max_chars=2000)
    override = False
    if plan.guards and not plan.guards_passed:
        if identity.role is Role.ADMIN:
            override = st.checkbox("Override the failed guards (recorded as an override)")
        else:
            st.error("Guards failed: the advance is refused. An admin can override.")
    ready = bool(reason.strip()) and (plan.guards_passed or override) and bool(plan.transitions)
    if environment in rt.settings.typed_confirmation_environments:
        wanted = flag or environment
        typed = st.text_input(f"Type **{wanted}** to confirm")
        ready = ready and typed.strip() == wanted
    if st.button(f"Confirm: {_LABELS[action]}", type="primary", disabled=not ready):
        final = ActionRequest(
            action=action,
            environment=environment,
            reason=reason,
            identity=identity,
            flag=flag,
            idempotency_key=key,
            expected_versions=versions,
            override_guards=override,
        )
        st.session_state[_OUTCOME] = _summary(rt.execute(final))
        st.rerun()


def _show_plan(plan: Plan) -> None:
    if not plan.transitions:
        st.info("Nothing to change: no flag is in state rollout.")
        return
    st.markdown("**Exact change**")
    st.code("\n".join(t.diff for t in plan.transitions), language=None)
    if plan.guards:
        verdict = "all guards pass" if plan.guards_passed else "some guards FAIL"
        st.markdown(f"**Guard report** — {verdict}")
        st.dataframe(guard_table(plan.guards), hide_index=True, width="stretch")


def _summary(result: ActionResult) -> dict[str, Any]:
    diff = "; ".join(t.diff for t in result.plan.transitions) if result.plan else ""
    if result.applied:
        text = f"Applied: {diff}" + (
            " (this key was already used: not applied twice)" if result.replayed else ""
        )
    elif result.exit_code is ExitCode.CONFLICT:
        text = (
            f"Not applied: the flag changed meanwhile ({result.error}). "
            "The page now shows its fresh state."
        )
    else:
        text = f"Not applied: {result.error}"
    return {
        "applied": result.applied,
        "code": result.exit_code,
        "text": text,
        "audit_id": result.audit[0].id if result.audit else None,
    }
