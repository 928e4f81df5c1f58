"""The autopilot on the pages: the heartbeat banner, the overview's Autopilot column and
Flag detail's Autopilot panel (the plan, its timeline and events, Pause / Resume / Abort
and the plan editor).

Buttons and the editor are shown to operators only, but the decision is the service's
(`app.autopilot.service` checks the role inside). Every button acts on the plan as the
page showed it (its version): a plan changed meanwhile by someone is never overwritten,
the person is told who changed what. A tick that only waited writes its notes without
moving the version (`PlanStore.note`), so it never stands in a person's way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from app.autopilot.backtest import Backtest, NoHistory, default_backtest_options
from app.autopilot.controller import LEASE
from app.autopilot.model import (
    ALL_GATES,
    OnFailure,
    PlanInvalid,
    PlanStatus,
    RolloutPlan,
    plan_warnings,
)
from app.autopilot.service import abort_plan, default_gates, pause_plan, resume_plan
from app.autopilot.store import PlanChanged, PlansUnavailable
from app.flags.backend import FlagSnapshot
from app.rollout.roles import Identity, NotAuthorized, Role
from app.runtime import Runtime
from app.services.autopilot import (
    FlagAt,
    PlanForm,
    backtest_rows,
    change_words,
    column_texts,
    event_rows,
    heartbeat_summary,
    killed_flag_words,
    moved_words,
    newest_events,
    plan_timeline,
    read_plan_form,
    status_text,
)
from app.services.overview import FlagRow
from app.text import escape_markdown, format_age
from app.ui.widgets import button_only_form, outcome_message

__all__ = ["autopilot_cells", "autopilot_panel", "heartbeat_banner", "planned"]

_ON_FAILURE_WORDS = {
    OnFailure.ROLLBACK: "roll back one step",
    OnFailure.KILL: "kill (0 %)",
    OnFailure.PAUSE: "pause and wait for a person",
}


def planned(rt: Runtime, environment: str, flag: str | None = None) -> list[RolloutPlan] | None:
    """The plans of `environment` (of `flag` only, when named) in one read; None with a
    note when the metrics database cannot be read."""
    try:
        if flag is not None:
            plan = rt.plans.get(environment, flag)
            return [plan] if plan is not None else []
        return rt.plans.plans(environment=environment)
    except PlansUnavailable as error:
        st.caption(f"🤖 Autopilot plans are not shown: {escape_markdown(str(error))}.")
        return None


def heartbeat_banner(rt: Runtime, plans: Sequence[RolloutPlan] | None) -> None:
    """While a plan is active: a quiet caption naming the leader and its last tick, or a
    warning when no controller acts on the plans (dead, or never started)."""
    if not plans or not any(p.is_active for p in plans):
        return
    try:
        beat = rt.plans.heartbeat(LEASE)
    except PlansUnavailable as error:
        st.warning(f"The autopilot's heartbeat cannot be read: {error}.", icon="🤖")
        return
    summary = heartbeat_summary(beat, datetime.now(UTC))
    text = summary.text[:1].upper() + summary.text[1:]
    if summary.dead:
        st.warning(text, icon="🤖")
    else:
        st.caption(f"🤖 {summary.text}")


def autopilot_cells(
    rt: Runtime, plans: Sequence[RolloutPlan] | None, rows: Sequence[FlagRow], now: datetime
) -> dict[str, str] | None:
    """Per planned flag of `rows`, its Autopilot cell; None when no flag has a plan (the
    overview then has no Autopilot column). One read of events, and only when a plan was
    lowered by the autopilot ('rolled back 25 → 5 % 3 min ago')."""
    if not plans:
        return None
    flags = {
        r.flag: FlagAt(r.state, r.percentage, r.last_change.at if r.last_change else None)
        for r in rows
    }
    events = {}
    if any(p.status is PlanStatus.PAUSED and p.status_by == "autopilot" for p in plans):
        environment = plans[0].environment
        try:
            events = newest_events(
                rt.plans.events(environment=environment, limit=max(200, 4 * len(plans)))
            )
        except PlansUnavailable:
            events = {}  # the cell says "paused: …" from the plan itself
    return column_texts(plans, flags, events, now) or None


# Flag detail's panel


def _said_key(environment: str, flag: str) -> str:
    return f"autopilot.said.{environment}.{flag}"


def _problems_key(environment: str, flag: str) -> str:
    return f"autopilot.problems.{environment}.{flag}"


def _confirm_key(environment: str, flag: str) -> str:
    return f"autopilot.confirm-abort.{environment}.{flag}"


def _field(environment: str, flag: str, name: str) -> str:
    return f"autopilot.{name}.{environment}.{flag}"


def autopilot_panel(rt: Runtime, identity: Identity, snapshot: FlagSnapshot, flag: str) -> None:
    """The flag's plan: what it is, its status and why it does not move, the timeline,
    the recent events, and for operators Pause / Resume / Abort and the plan editor;
    without a plan, the editor to attach one (operators) or a note (viewers)."""
    environment = snapshot.environment
    _show_said(environment, flag)
    try:
        plan = rt.plans.get(environment, flag)
    except PlansUnavailable as error:
        st.warning(
            f"{error}: rollout plans cannot be shown or set now; the flag's buttons above "
            "still work.",
            icon="🗄️",
        )
        return
    operator = identity.role.rank >= Role.OPERATOR.rank
    _backtest_panel(rt, snapshot, flag, plan)
    if plan is None:
        st.caption(
            "No rollout plan: the flag moves only when a person moves it. A plan lets the "
            "autopilot advance it step by step while every gate passes, and roll it back "
            "on a failure."
        )
        if operator:
            _plan_editor(rt, identity, snapshot, flag, None, "Attach a rollout plan")
        else:
            st.caption("Attaching a plan needs the operator role.")
        return
    now = datetime.now(UTC)
    _plan_view(rt, snapshot, flag, plan, now)
    if not operator:
        st.caption("Pausing, resuming, aborting or changing the plan needs the operator role.")
        return
    if plan.status is not PlanStatus.ABORTED:
        _plan_buttons(rt, identity, snapshot, flag, plan)
        with st.expander("Change the plan"):
            _plan_editor(rt, identity, snapshot, flag, plan, "Save the changed plan")
    else:
        _plan_editor(rt, identity, snapshot, flag, plan, "Set a new rollout plan")


def _backtest_panel(
    rt: Runtime, snapshot: FlagSnapshot, flag: str, plan: RolloutPlan | None
) -> None:
    """ "What would this plan have done?": the autopilot's own decisions over the last
    24 h (`Runtime.backtest`), for the stored plan or a default one; writes nothing."""
    key = f"autopilot.backtest.{snapshot.environment}.{flag}"
    which = "this plan" if plan is not None else "a default plan"
    with st.expander(f"What would {which} have done? (last 24 h)"):
        options = None if plan is not None else default_backtest_options(snapshot, rt.guard_policy)
        st.caption(
            "Replays the autopilot's own decisions every tick over the last 24 h of metrics, "
            "as if the plan had been set then. The traffic is what it was: a step it would "
            "have taken is listed, but later ticks judge the share the flag really had. "
            "Nothing is changed."
        )
        if st.button("Replay the last 24 h", key=f"{key}.run"):
            end = datetime.now(UTC)
            with st.spinner("Replaying 2,880 ticks…"):
                try:
                    st.session_state[key] = rt.backtest(
                        snapshot.environment, flag, end - timedelta(hours=24), end, options
                    )
                except (PlanInvalid, NoHistory, PlansUnavailable, ValueError) as error:
                    st.session_state[key] = str(error)
        result = st.session_state.get(key)
        if isinstance(result, str):
            st.warning(escape_markdown(result), icon="🔎")
        elif isinstance(result, Backtest):
            st.markdown(
                f"**{escape_markdown(result.plan.text)}**, from "
                f"{result.plan.expected_percentage:g} % · {escape_markdown(result.stopped)}"
            )
            st.dataframe(
                pd.DataFrame(backtest_rows(result)),
                hide_index=True,
                width="stretch",
                key=f"{key}.table",
            )


def _plan_view(
    rt: Runtime, snapshot: FlagSnapshot, flag: str, plan: RolloutPlan, now: datetime
) -> None:
    definition = snapshot.flag(flag)
    last = rt.audit.latest_applied(snapshot.environment, flag)
    try:
        events = rt.plans.events(plan.id, limit=10)
    except PlansUnavailable:
        events = []
    timeline = plan_timeline(
        plan, definition.state, definition.percentage, last.at if last else None, events, now
    )
    set_ago = format_age((now - plan.created_at).total_seconds())
    st.markdown(
        f"**Plan:** {escape_markdown(plan.text)}  \n"
        f"Set by {escape_markdown(plan.created_by)} {set_ago} ago · gates: "
        f"{escape_markdown(', '.join(g.replace('_', ' ') for g in sorted(plan.gates)))}"
    )
    words = status_text(plan)
    status = escape_markdown(words[:1].upper() + words[1:])
    moved = moved_words(plan, definition.state, definition.percentage)
    killed = killed_flag_words(plan)
    if plan.status is not PlanStatus.ABORTED and moved:
        then = "the next tick pauses the plan" if plan.is_active else "resume to go on from there"
        st.warning(f"{escape_markdown(moved[:1].upper() + moved[1:])}: {then}.", icon="✋")
    if plan.status is PlanStatus.ACTIVE:
        st.markdown(f"Status: **▶️ active** · {_decision_words(plan, now)}")
        if killed is not None and not moved:
            st.warning(escape_markdown(killed.detail), icon="🛑")
        elif timeline.blocked:
            st.info(f"Blocked: {escape_markdown(timeline.blocked)}", icon="⏳")
    elif plan.status is PlanStatus.PAUSED:
        st.warning(status, icon="⏸️")
    else:
        st.info(f"{status}. The flag stays where it is.", icon="⏹️")
    st.dataframe(
        pd.DataFrame(
            {
                "Step": [s.label for s in timeline.steps],
                "Status": [str(s.state) for s in timeline.steps],
                "Detail": [s.detail for s in timeline.steps],
            }
        ),
        hide_index=True,
        width="stretch",
        key=f"autopilot.timeline.{snapshot.environment}.{flag}",
    )
    if events:
        st.markdown("**Recent autopilot events**")
        st.dataframe(
            pd.DataFrame(event_rows(events, now)),
            hide_index=True,
            width="stretch",
            column_config={
                "Failing → acted": st.column_config.TextColumn(
                    help="From the first tick that saw the gate failing to the change applied; "
                    "the time until the treatment stopped being served is under Metrics"
                ),
                "Audit record": st.column_config.TextColumn(
                    help="The change's record on the Audit page"
                ),
            },
            key=f"autopilot.events.{snapshot.environment}.{flag}",
        )
    else:
        st.caption("The autopilot has not moved or paused this flag yet.")


def _decision_words(plan: RolloutPlan, now: datetime) -> str:
    if not plan.last_decision:
        return "no tick has looked at it yet"
    ago = ""
    if plan.last_decision_at is not None:
        ago = f" ({format_age((now - plan.last_decision_at).total_seconds())} ago)"
    return f"latest: {escape_markdown(plan.last_decision)}{ago}"


def _plan_buttons(
    rt: Runtime, identity: Identity, snapshot: FlagSnapshot, flag: str, plan: RolloutPlan
) -> None:
    environment = snapshot.environment
    reason_key = _field(environment, flag, "reason")
    st.text_input(
        "Reason for pausing, resuming or aborting (optional, goes to the audit log)",
        key=reason_key,
        max_chars=500,
    )
    pause_col, abort_col, _ = st.columns([1, 1, 2])
    if plan.status is PlanStatus.ACTIVE:
        move, label = "pause", "⏸️ Pause the plan"
    else:
        move, label = "resume", "▶️ Resume the plan"
    pause_col.button(
        label,
        key=_field(environment, flag, move),
        on_click=_act,
        args=(rt, identity, move, plan, reason_key),
        width="stretch",
    )
    confirm_key = _confirm_key(environment, flag)
    abort_col.button(
        "⏹️ Abort the plan…",
        key=_field(environment, flag, "abort"),
        on_click=lambda: st.session_state.__setitem__(confirm_key, True),
        width="stretch",
    )
    if st.session_state.get(confirm_key):
        where = f"{plan.expected_percentage:g} %"
        st.warning(
            f"Abort the plan for good? The flag stays where it is (the plan left it at "
            f"{where}); the autopilot will not touch it again. A new plan can be set later.",
            icon="⏹️",
        )
        yes_col, no_col, _ = st.columns([1, 1, 2])
        yes_col.button(
            "Yes, abort the plan",
            type="primary",
            key=_field(environment, flag, "abort-confirm"),
            on_click=_act,
            args=(rt, identity, "abort", plan, reason_key),
            width="stretch",
        )
        no_col.button(
            "Keep the plan",
            key=_field(environment, flag, "abort-cancel"),
            on_click=lambda: st.session_state.pop(confirm_key, None),
            width="stretch",
        )


def _act(rt: Runtime, identity: Identity, move: str, seen: RolloutPlan, reason_key: str) -> None:
    """Pause / resume / abort `seen` (a button's callback); what happened is kept for the
    rerun. A plan changed by someone meanwhile is left alone, naming them."""
    environment, flag = seen.environment, seen.flag
    st.session_state.pop(_confirm_key(environment, flag), None)
    reason = str(st.session_state.get(reason_key, ""))
    now = datetime.now(UTC)

    def apply(plan: RolloutPlan) -> RolloutPlan:
        if move == "pause":
            return pause_plan(rt.plans, rt.audit, identity, plan, reason, now)
        if move == "resume":
            snapshot = rt.backend.load(environment)
            return resume_plan(
                rt.plans,
                rt.audit,
                identity,
                plan,
                snapshot,
                reason,
                now,
                approval_required=plan.environment in rt.settings.approval_required_in,
            )
        return abort_plan(rt.plans, rt.audit, identity, plan, reason, now)

    verb = {"pause": "paused", "resume": "resumed", "abort": "aborted"}[move]
    try:
        done = apply(seen)
    except PlanChanged as changed:
        words = change_words(seen, changed.current) or "changed meanwhile"
        _say(environment, flag, "warning", f"Not {verb}: {words}. The page shows it now.")
        return
    except (PlanInvalid, NotAuthorized, PlansUnavailable, OSError, ValueError) as refused:
        _say(environment, flag, "error", f"Not {verb}: {_refusal(refused)}")
        return
    # cleared, so that the next button does not carry this reason into the audit log
    st.session_state[reason_key] = ""
    where = f"{done.expected_state} {done.expected_percentage:g} %"
    killed = killed_flag_words(done)
    after = {
        "pause": f"The autopilot leaves the flag at {where} until the plan is resumed.",
        "resume": killed.detail
        if killed is not None
        else f"The autopilot goes on from {where} at its next tick.",
        "abort": f"The flag stays at {where}; the autopilot will not touch it again.",
    }[move]
    _say(environment, flag, "success", f"Plan {verb}. {after}")


def _refusal(error: Exception) -> str:
    if isinstance(error, PlanInvalid):
        return "; ".join(error.problems)
    return str(error)


def _say(environment: str, flag: str, kind: str, text: str) -> None:
    st.session_state[_said_key(environment, flag)] = (kind, text)


def _show_said(environment: str, flag: str) -> None:
    """What the last button or save did, once."""
    said = st.session_state.pop(_said_key(environment, flag), None)
    if said is None:
        return
    kind, text = said
    text = escape_markdown(text)
    outcome_message(kind, text)


def _plan_editor(
    rt: Runtime,
    identity: Identity,
    snapshot: FlagSnapshot,
    flag: str,
    seen: RolloutPlan | None,
    label: str,
) -> None:
    """The plan as a form, filled from `seen` (or the defaults), saved from the version
    the person saw; every problem is named under the form and nothing is written."""
    environment = snapshot.environment
    start = (
        PlanForm.of(seen)
        if seen is not None
        else PlanForm(
            steps=",".join(f"{s:g}" for s in snapshot.config.global_.rollout_steps),
            soak="30m",
            gates=tuple(g for g in ALL_GATES if g in default_gates(flag, rt.settings.canary_flag)),
            on_failure=OnFailure.ROLLBACK,
            stop_at=50.0,
        )
    )
    keys = {
        name: _field(environment, flag, f"form-{name}")
        for name in ("steps", "soak", "gates", "on_failure", "stop_at", "hours")
    }
    for name, value in (
        ("steps", start.steps),
        ("soak", start.soak),
        ("gates", list(start.gates)),
        ("on_failure", start.on_failure),
        ("stop_at", start.stop_at),
        ("hours", start.allowed_hours),
    ):
        st.session_state.setdefault(keys[name], value)
    with button_only_form(_field(environment, flag, "form")):
        st.markdown(f"**{label}**")
        steps_col, soak_col, stop_col = st.columns(3)
        steps_col.text_input(
            "Steps (%)", key=keys["steps"], max_chars=200, help="Rising, comma-separated: 1,5,25,50"
        )
        soak_col.text_input(
            "Soak at each step", key=keys["soak"], max_chars=40, help="30m, 45s, 2h or 1h30m"
        )
        stop_col.number_input(
            "The autopilot goes alone up to (%)",
            key=keys["stop_at"],
            min_value=0.0,
            max_value=100.0,
            step=5.0,
            format="%g",
            help="A higher step waits for a person (default 50 %: the last step to 100 % "
            "is taken by hand).",
        )
        st.multiselect(
            "Gates (each must pass before a step)",
            list(ALL_GATES),
            key=keys["gates"],
            format_func=lambda g: g.replace("_", " "),
        )
        failure_col, hours_col = st.columns([2, 3])
        failure_col.radio(
            "On a failure the data proves",
            list(OnFailure),
            key=keys["on_failure"],
            format_func=lambda o: _ON_FAILURE_WORDS[OnFailure(o)],
            horizontal=True,
        )
        hours_col.text_input(
            "Allowed hours for advancing (optional; a rollback never waits)",
            key=keys["hours"],
            max_chars=100,
            placeholder="mon-fri 09-17 Europe/Berlin",
        )
        st.form_submit_button(
            f"💾 {label}",
            type="primary",
            on_click=_save,
            args=(rt, identity, flag, environment, seen, keys),
        )
    problems = st.session_state.pop(_problems_key(environment, flag), None)
    if problems:
        lines = "\n".join(f"- {escape_markdown(p)}" for p in problems)
        st.error(f"The plan was not saved (nothing was written):\n{lines}", icon="⛔")


def _save(
    rt: Runtime,
    identity: Identity,
    flag: str,
    environment: str,
    seen: RolloutPlan | None,
    keys: dict[str, str],
) -> None:
    """Save the form (its submit button's callback) from the plan the person saw."""
    state = st.session_state
    form = PlanForm(
        steps=str(state[keys["steps"]]),
        soak=str(state[keys["soak"]]),
        gates=tuple(state[keys["gates"]]),
        on_failure=OnFailure(state[keys["on_failure"]]),
        stop_at=float(state[keys["stop_at"]]),
        allowed_hours=str(state[keys["hours"]]),
    )

    def save(version: int) -> RolloutPlan:  # the version the person saw
        return rt.set_plan(identity, environment, flag, read_plan_form(form), seen_version=version)

    try:
        saved = save(seen.version if seen is not None else 0)
    except PlanInvalid as invalid:
        state[_problems_key(environment, flag)] = list(invalid.problems)
        return
    except PlanChanged as changed:
        words = change_words(seen, changed.current) or "changed meanwhile"
        now_text = f" The plan now: {changed.current.text}." if changed.current else ""
        _say(environment, flag, "warning", f"Not saved: {words}.{now_text} Nothing overwritten.")
        return
    except (NotAuthorized, PlansUnavailable, OSError) as refused:
        _say(environment, flag, "error", f"Not saved: {refused}")
        return
    words = f"Plan saved: {saved.text}. The autopilot looks at it at its next tick."
    warnings = plan_warnings(read_plan_form(form))
    if warnings:  # said with the outcome, where the person clicked
        _say(environment, flag, "note", f"{words} Note: {'; '.join(warnings)}.")
        return
    _say(environment, flag, "success", words)
