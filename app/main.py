"""Streamlit entry point: page registry and the frame every page shares.

While a `ROLLOUT_*` setting is invalid, every page names each bad setting and why.
While the flag configuration cannot be read (a fresh state directory, an invalid file),
every page is replaced by one that says which file was looked for, which setting points
elsewhere, and each problem found, instead of a traceback. While the flag server (Unleash)
does not answer, a page that needs the flags says so, and which server, instead; the
Audit page, which needs only the metrics database, still works. While the metrics
database is not at this release's schema and `ROLLOUT_AUTO_MIGRATE=false`, every page
says so and what to run.
"""

import streamlit as st

from app.flags.loader import ConfigInvalid
from app.metrics_db.revisions import SchemaNotCurrent
from app.settings import SettingsInvalid, load_settings
from app.ui.widgets import (
    config_problem_page,
    flag_source_banner,
    flag_source_label,
    identity_label,
    runtime,
    settings_problem_page,
    sign_in_controls,
)
from queries.source import SourceUnavailable

st.set_page_config(page_title="Rollout Dashboard", page_icon="🚦", layout="wide")

pages = [
    st.Page("../pages/overview.py", title="Overview", icon="🚦", default=True),
    st.Page("../pages/flag_detail.py", title="Flag detail", icon="🔎"),
    st.Page("../pages/canary.py", title="Canary", icon="🐤"),
    st.Page("../pages/phases.py", title="Phases", icon="🧭"),
    st.Page("../pages/requests.py", title="Requests", icon="✋"),
    st.Page("../pages/audit.py", title="Audit", icon="📜"),
]
navigation = st.navigation(pages)
try:
    rt = runtime()
except SettingsInvalid as error:
    settings_problem_page(error)
    st.stop()
except SourceUnavailable as error:  # the sql flag backend without its database
    flag_source_banner(load_settings(), error, page_stopped=True)
    st.stop()
except SchemaNotCurrent as error:  # ROLLOUT_AUTO_MIGRATE=false: someone else migrates
    st.title("🚦 Rollout Dashboard cannot start: the database schema")
    st.error(f"{error}. Nothing was read or written; reload once it is done.", icon="🗄️")
    st.stop()
flags_down = False
try:
    rt.config(rt.settings.environment)
except ConfigInvalid as error:
    config_problem_page(rt.settings, error)
    st.stop()
except SourceUnavailable as error:  # the flag server: pages that need no flags still run
    flag_source_banner(rt.settings, error)
    flags_down = True
st.sidebar.caption(identity_label(rt))
st.sidebar.caption(flag_source_label(rt.settings))
sign_in_controls(rt)
try:
    navigation.run()
except ConfigInvalid as error:  # another environment's override file is invalid
    config_problem_page(rt.settings, error)
except SourceUnavailable as error:
    flag_source_banner(rt.settings, error, page_stopped=True, shown=flags_down)
