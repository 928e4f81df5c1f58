"""Flag detail: one flag's health and why, its configuration, the actions and the guard
report for its next step, its rollout plan (the autopilot: timeline, events, Pause /
Resume / Abort, the plan editor), then (refreshing on their own) its metrics over a time
range with every applied change drawn on each chart, errors by variant, exposure, step
age, schedule, propagation, time to mitigate and history."""

from datetime import UTC, datetime

import streamlit as st

from app.rollout.evidence import evidence_paths
from app.services.flag_detail import (
    DEFAULT_RANGE,
    DEFAULT_REFRESH,
    RANGES,
    REFRESH,
    flag_detail_sources,
    load_flag_detail,
)
from app.ui.action_dialog import action_buttons, restore_history, show_last_outcome
from app.ui.autopilot import autopilot_panel, heartbeat_banner, planned
from app.ui.deliveries import render_failed_deliveries
from app.ui.flag_panels import (
    advance_preview,
    dependencies_panel,
    evidence_panel,
    exposure_panel,
    flag_summary,
    guard_report_panel,
    health_line,
    history_panel,
    metric_charts,
    owner_line,
    propagation_panel,
    range_header,
    remember_top,
    rules_panel,
    step_panel,
    top_is_stale,
    variant_errors_panel,
)
from app.ui.pending_requests import flag_request_notice, rejection_notice
from app.ui.widgets import (
    LinkedWidgets,
    current_identity,
    emitter_caption,
    environment_picker,
    runtime,
)

rt = runtime()
identity = current_identity(rt)
st.title("🔎 Flag detail")
show_last_outcome()

widgets = LinkedWidgets("flag_detail")
env_col, flag_col = st.columns([2, 3])  # "production" whole at 1024 px
environment = environment_picker(widgets, rt, env_col)
snapshot = rt.backend.load(environment)
keys = sorted(snapshot.config.flags)
key = widgets.selectbox(
    flag_col,
    "Flag",
    "flag",
    keys,
    default=keys[0] if keys else None,
    missing=lambda unknown: f"no flag {unknown} in {environment}",
)
widgets.sync()
if key is None:
    st.info(f"Choose a flag of {environment} above.", icon="👆")
    st.stop()
flag = snapshot.flag(key)
remember_top(snapshot, key, rt.audit.entries(flag=key, environment=environment, limit=1))
heartbeat_banner(rt, planned(rt, environment, key))
if rt.settings.webhooks:
    render_failed_deliveries(rt)

st.subheader(key)
st.caption(flag.metadata.description or "no description")
emitter_caption(rt)
preview = advance_preview(rt, identity, environment, key)
health_line(rt, environment, key, [] if isinstance(preview, str) else preview.guards)
flag_summary(flag)
owner_line(rt, flag)

st.markdown("#### Actions")
flag_request_notice(rt, environment, key, snapshot.versions)
rejection_notice(rt, identity, environment, key)
action_buttons(rt, identity, environment, key, snapshot.versions, snapshot=snapshot)

st.markdown("#### Guard report for the next step")
guard_report_panel(preview)

st.markdown("#### Autopilot")
autopilot_panel(rt, identity, snapshot, key)

rules_col, deps_col = st.columns(2)
with rules_col:
    st.markdown("#### Targeting rules")
    rules_panel(flag)
with deps_col:
    st.markdown("#### Dependencies")
    dependencies_panel(snapshot.config, flag)

st.markdown("#### Metrics over time")
range_col, refresh_col = st.columns([3, 1])
range_name = widgets.radio(range_col, "Time range", "range", list(RANGES), default=DEFAULT_RANGE)
refresh_name = widgets.selectbox(
    refresh_col, "Refresh", "refresh", list(REFRESH), default=DEFAULT_REFRESH
)
refresh_name = refresh_name or DEFAULT_REFRESH
widgets.sync()


@st.fragment(run_every=REFRESH[refresh_name])
def detail_panels() -> None:
    """Everything below reloads its own inputs on each refresh: the flag as it is now
    and its history, so another operator's change shows without a full rerun."""
    now = datetime.now(UTC)
    current = rt.backend.load(environment)
    history = rt.audit.entries(flag=key, environment=environment, limit=100)
    if top_is_stale(current, key, history):
        st.rerun()  # the flag moved since the top was drawn: redraw the whole page
    detail = load_flag_detail(
        flag_detail_sources(rt.sources),
        current,
        key,
        history,
        range_name,
        now,
        notices=rt.notices,
        judged=rt.judged(current, key, now),
    )
    range_header(detail)
    metric_charts(detail)
    variant_errors_panel(detail)
    if detail.judged is not None:
        evidence_panel(detail, evidence_paths(detail.judged, rt.guard_policy, key))
    exposure_panel(detail)
    step_panel(detail)
    propagation_panel(detail)
    history_panel(detail, rt.outside_changes(environment))


detail_panels()
restore_history(rt, identity, environment, key)
