"""Audit: not built yet; says what will come."""

import streamlit as st

st.title("📜 Audit")
st.info(
    "Coming next: Every action with actor, time, from → to, reason, guard snapshot and "
    "outcome; filters and CSV export."
)
