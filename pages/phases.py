"""Phases: progress of the six technical-debt phases, from the flag configuration."""

import pandas as pd
import streamlit as st

from app.ui.widgets import runtime

rt = runtime()
st.title("🧭 Technical-debt phases")
environments = rt.environments()
environment = st.columns([1, 3])[0].selectbox("Environment", environments)
progress = rt.phases(environment)
st.caption(
    "Source: flag configuration · progress = mean rollout % of the phase's flags. "
    "Burn-up, planned vs actual timeline and history arrive with the phases issue."
)
st.dataframe(
    pd.DataFrame(
        {
            "Phase": [p.phase for p in progress],
            "Name": [p.name for p in progress],
            "Planned week": [p.planned_week for p in progress],
            "Status": [str(p.status).replace("_", " ") for p in progress],
            "Progress": [100 * p.progress for p in progress],
            "At 100 %": [f"{p.flags_complete}/{len(p.flags)}" for p in progress],
            "Blocked by": [", ".join(p.blocked_by) or "–" for p in progress],
        }
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "Progress": st.column_config.ProgressColumn(
            "Progress", min_value=0, max_value=100, format="%.0f %%"
        )
    },
)
