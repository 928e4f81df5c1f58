"""Streamlit entry point: page registry and the frame every page shares."""

import streamlit as st

from app.ui.widgets import identity_label, runtime, sign_in_controls

st.set_page_config(page_title="Rollout Dashboard", page_icon="🚦", layout="wide")

pages = [
    st.Page("../pages/overview.py", title="Overview", icon="🚦", default=True),
    st.Page("../pages/flag_detail.py", title="Flag detail", icon="🔎"),
    st.Page("../pages/canary.py", title="Canary", icon="🐤"),
    st.Page("../pages/phases.py", title="Phases", icon="🧭"),
    st.Page("../pages/audit.py", title="Audit", icon="📜"),
]
navigation = st.navigation(pages)
st.sidebar.caption(identity_label(runtime()))
sign_in_controls(runtime())
navigation.run()
