"""Phases: the six technical-debt phases — progress, planned week vs actual, what blocks
them, a burn-up and a timeline, from the flag configuration and the audit history."""

from datetime import UTC, datetime

import streamlit as st

from app.services.phases import (
    blocked_lines,
    load_phases,
    outside_changes_table,
    phase_table,
    phase_table_csv,
    source_line,
)
from app.ui.phase_charts import burn_up_chart, export_config, timeline_chart
from app.ui.widgets import LinkedWidgets, environment_picker, runtime

rt = runtime()
st.title("🧭 Technical-debt phases")
st.caption(
    "Progress = mean rollout % of the phase's flags. Planned weeks count from the project "
    "start: the config's `phases.start` date (without one, the first applied change in "
    "the history, or today). Actual start = the first time a flag of the phase was above "
    "0 % (*before the history* when one already was before its first recorded change); "
    "actual finish = the applied change after which all its flags are at 100 %."
)

widgets = LinkedWidgets("phases")
environment = environment_picker(widgets, rt, st.columns([1, 3])[0])
widgets.sync()


@st.fragment(run_every=max(rt.settings.refresh_seconds, 60))
def phases_panel() -> None:
    now = datetime.now(UTC)
    view = load_phases(
        rt.config(environment),
        rt.audit,
        environment,
        now,
        rt.notices,
        rt.cached_overview(environment).rows,
        rt.settings.max_error_rate,
    )
    for notice in view.notices:
        st.warning(notice, icon="⚠️")
    st.caption(source_line(view))
    if view.history_available and view.newest_change is None:
        st.info(
            f"The history has no applied change in {environment} yet: no actual dates, and "
            "the burn-up shows the present only."
        )

    st.dataframe(
        phase_table(view),
        hide_index=True,
        width="stretch",
        column_config={
            "Progress": st.column_config.ProgressColumn(
                "Progress", min_value=0, max_value=100, format="%.0f %%"
            ),
            # wide enough for "before the history" and "stopped: every flag at 0 %"
            "Actual start": st.column_config.TextColumn(width="medium"),
            "Status": st.column_config.TextColumn(width="medium"),
        },
    )
    st.download_button(
        "Download the phase table (CSV)",
        phase_table_csv(view),
        file_name=f"phases-{environment}-{now:%Y%m%d}.csv",
        mime="text/csv",
        on_click="ignore",
        icon="⬇️",
    )

    if any(s.started_before_history for s in view.schedule):
        st.caption(
            "*Before the history*: a flag of the phase was already above 0 % before its "
            "first recorded change (or is above 0 % in the config and was never changed "
            "here), so the phase started before the audit history begins."
        )

    st.subheader("Blocked by")
    st.caption(
        "Dependencies not at 100 %, advances refused by their guards, unhealthy flags and "
        "flags whose error ratio fails the advance guard — from the overview's live "
        "numbers, shared by every viewer. The full guard report (soak time, exposure, "
        "significance) needs several queries per flag: it is on each flag's detail page."
    )
    if not view.reasons:
        st.success("Nothing blocks an unfinished phase.", icon="✅")
    for line in blocked_lines(view):
        st.markdown(line)

    burn_col, timeline_col = st.columns(2)
    burn_col.plotly_chart(
        burn_up_chart(view), config=export_config(f"phases-burn-up-{environment}")
    )
    timeline_col.plotly_chart(
        timeline_chart(view), config=export_config(f"phases-timeline-{environment}")
    )

    outside = rt.outside_changes(environment)
    if outside is None:
        st.warning("The flag server's event log did not answer: changes made there are not shown.")
    elif outside:
        st.subheader("Changes made in Unleash itself")
        st.caption(
            "From Unleash's event log: made in its own UI or API, not through the dashboard, "
            "so they are in neither the audit history nor the burn-up above."
        )
        st.dataframe(
            outside_changes_table(outside, rt.config(environment), now),
            hide_index=True,
            width="stretch",
        )


phases_panel()
