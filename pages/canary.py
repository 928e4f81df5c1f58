"""Canary: not built yet; says what will come."""

import streamlit as st

st.title("🐤 Canary")
st.info(
    "Coming next: Canary vs baseline (track=canary vs track=stable): error ratio and "
    "latency with a pass / marginal / fail verdict per metric and overall, and the "
    "statistics behind it."
)
