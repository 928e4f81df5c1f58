"""Overview: every flag of one environment, the unhealthy and recently changed first."""

from datetime import UTC, datetime

import streamlit as st

from app.analysis.health import Health
from app.flags.model import FlagState
from app.services.overview import OverviewFilter, filter_rows, pending_first
from app.services.requests import pending_badges
from app.ui.action_dialog import emergency_button, show_last_outcome
from app.ui.autopilot import autopilot_cells, heartbeat_banner, planned
from app.ui.deliveries import render_failed_deliveries
from app.ui.overview_table import FLAG_LINK_TEXT, overview_display_frame
from app.ui.pending_requests import pending_banner, pending_in, rejection_notice
from app.ui.widgets import (
    LinkedWidgets,
    current_identity,
    emitter_caption,
    environment_picker,
    runtime,
    source_banner,
)

#: First, so they fit a 1024 px wide screen; every other column follows in frame order.
FIRST_COLUMNS = ("Health", "Flag", "Rollout %", "Errors", "Request", "Why", "Autopilot")

rt = runtime()
identity = current_identity(rt)
title_col, button_col = st.columns([3, 2], vertical_alignment="bottom")
title_col.title("🚦 Rollout overview")
show_last_outcome()
t = rt.settings
st.caption(
    f"Unhealthy and recently changed flags first. Health: errors above "
    f"{100 * t.error_rate_degraded:g} % degraded, above {100 * t.error_rate_unhealthy:g} % "
    f"unhealthy; p99 above {1000 * t.p99_degraded_seconds:g} ms degraded, above "
    f"{1000 * t.p99_unhealthy_seconds:g} ms unhealthy. Rates and errors over the last "
    f"{t.rate_window_seconds // 60} min, or since the step began when later; treatment "
    "against control judged as the guards judge it (Flag detail: since the step began)."
)
emitter_caption(rt)

widgets = LinkedWidgets("overview")
env_col, phase_col, state_col, health_col, text_col = st.columns([2, 2, 2, 2, 3])
environment = environment_picker(widgets, rt, env_col)
phases = widgets.multiselect(phase_col, "Phase", "phase", [1, 2, 3, 4, 5, 6])
states = widgets.multiselect(state_col, "State", "state", list(FlagState))
health = widgets.multiselect(health_col, "Health", "health", list(Health))
text = widgets.text_input(text_col, "Search", "q", placeholder="flag key")
with button_col:
    emergency_button(rt, identity, environment)  # its column is wide enough for its label
widgets.sync()


@st.fragment(run_every=rt.settings.refresh_seconds)
def flag_table() -> None:
    plans = planned(rt, environment)  # one read for the banner and the column
    heartbeat_banner(rt, plans)
    if rt.settings.webhooks:  # a notification that did not get out is said where people look
        render_failed_deliveries(rt)
    overview = rt.cached_overview(environment)
    pending = pending_in(rt, environment)
    wanted = OverviewFilter(frozenset(phases), frozenset(states), frozenset(health), text)
    rows = pending_first(filter_rows(overview.rows, wanted), pending or {})
    source_banner(overview, rt.settings.stale_after_seconds, len(rows))
    pending_banner(pending, environment)
    rejection_notice(rt, identity, environment)
    if not rows:
        st.info("No flag matches these filters.")
        return
    requests = None if pending is None else pending_badges(pending)  # a column where it matters
    now = datetime.now(UTC)
    autopilot = autopilot_cells(rt, plans, rows, now)  # a column where a flag has a plan
    frame = overview_display_frame(rows, now, environment, requests, autopilot)
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(rows), 900),
        # What an on-call engineer needs to act comes first and is pinned, so at 1024 px
        # Health, Flag, Rollout % and Errors never scroll out of sight.
        column_order=[*FIRST_COLUMNS, *(c for c in frame.columns if c not in FIRST_COLUMNS)],
        column_config={
            "Health": st.column_config.TextColumn(width=110, pinned=True),
            "Flag": st.column_config.LinkColumn(
                display_text=FLAG_LINK_TEXT, width=180, pinned=True
            ),
            "Rollout %": st.column_config.ProgressColumn(
                "Rollout %", min_value=0, max_value=100, format="%.0f %%", width=100
            ),
            "Errors": st.column_config.TextColumn(width=70),
            "Request": st.column_config.TextColumn(
                width=110, help="A pending change request: its number and target"
            ),
            "Why": st.column_config.TextColumn(width=240),
            "Autopilot": st.column_config.TextColumn(
                width=260, help="What the flag's rollout plan does next (Flag detail has it)"
            ),
            "p99": st.column_config.TextColumn(width=70),
            "Phase": st.column_config.TextColumn(width=50),
            "State": st.column_config.TextColumn(width=70),
            "Evaluations": st.column_config.TextColumn(width=90),
            "Trend": st.column_config.LineChartColumn(
                f"Last {rt.settings.sparkline_minutes} min", y_min=0, width=110
            ),
        },
    )


flag_table()
