"""Overview: every flag of one environment, the unhealthy and recently changed first."""

from datetime import UTC, datetime

import streamlit as st

from app.analysis.health import Health
from app.flags.model import FlagState
from app.services.overview import OverviewFilter, filter_rows
from app.ui.action_dialog import emergency_button, show_last_outcome
from app.ui.overview_table import FLAG_LINK_TEXT, overview_display_frame
from app.ui.widgets import (
    LinkedWidgets,
    current_identity,
    environment_picker,
    runtime,
    source_banner,
)

rt = runtime()
identity = current_identity(rt)
title_col, button_col = st.columns([4, 1], vertical_alignment="bottom")
title_col.title("🚦 Rollout overview")
show_last_outcome()
t = rt.settings
st.caption(
    f"Unhealthy and recently changed flags first. Health: errors above "
    f"{100 * t.error_rate_degraded:g} % degraded, above {100 * t.error_rate_unhealthy:g} % "
    f"unhealthy; p99 above {1000 * t.p99_degraded_seconds:g} ms degraded, above "
    f"{1000 * t.p99_unhealthy_seconds:g} ms unhealthy. Rates over the last "
    f"{t.rate_window_seconds // 60} min."
)

widgets = LinkedWidgets("overview")
env_col, phase_col, state_col, health_col, text_col = st.columns([2, 2, 2, 2, 3])
environment = environment_picker(widgets, rt, env_col)
phases = widgets.multiselect(phase_col, "Phase", "phase", [1, 2, 3, 4, 5, 6])
states = widgets.multiselect(state_col, "State", "state", list(FlagState))
health = widgets.multiselect(health_col, "Health", "health", list(Health))
text = widgets.text_input(text_col, "Search", "q", placeholder="flag key")
with button_col:
    emergency_button(rt, identity, environment)
widgets.sync()


@st.fragment(run_every=rt.settings.refresh_seconds)
def flag_table() -> None:
    overview = rt.cached_overview(environment)
    source_banner(overview, rt.settings.stale_after_seconds)
    wanted = OverviewFilter(frozenset(phases), frozenset(states), frozenset(health), text)
    rows = filter_rows(overview.rows, wanted)
    if not rows:
        st.info("No flag matches these filters.")
        return
    st.dataframe(
        overview_display_frame(rows, datetime.now(UTC), environment),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(rows), 900),
        column_config={
            "Health": st.column_config.TextColumn(width=110),
            "Flag": st.column_config.LinkColumn(display_text=FLAG_LINK_TEXT),
            "Why": st.column_config.TextColumn(width=180),
            "Phase": st.column_config.TextColumn(width=50),
            "State": st.column_config.TextColumn(width=70),
            "Rollout %": st.column_config.ProgressColumn(
                "Rollout %", min_value=0, max_value=100, format="%.0f %%", width=110
            ),
            "Evaluations": st.column_config.TextColumn(width=90),
            "Trend": st.column_config.LineChartColumn(
                f"Last {rt.settings.sparkline_minutes} min", y_min=0, width=110
            ),
            "Errors": st.column_config.TextColumn(width=70),
            "p99": st.column_config.TextColumn(width=80),
        },
    )


flag_table()
