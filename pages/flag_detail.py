"""Flag detail: not built yet; says what will come."""

import streamlit as st

st.title("🔎 Flag detail")
st.info(
    "Coming next: Per-flag charts: evaluations per variant over time, error rate, latency "
    "quantiles, configured vs observed exposure, rollout changes as annotations, "
    "targeting rules, dependencies, the guard report for the next step, history and the "
    "Advance / Roll back / Kill buttons."
)
