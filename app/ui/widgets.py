"""Streamlit pieces every page shares: the process runtime, the source/age banner,
the identity label and query-parameter helpers."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app.rollout.roles import Identity, Role, role_for
from app.runtime import Runtime, open_runtime
from app.services.overview import Overview
from app.settings import load_settings
from app.ui.format import format_age

__all__ = [
    "current_identity",
    "identity_label",
    "query_list",
    "runtime",
    "set_query_params",
    "sign_in_controls",
    "source_banner",
]


@st.cache_resource
def runtime() -> Runtime:
    """One runtime per server process, shared by every session."""
    return open_runtime(load_settings())


def current_identity(rt: Runtime) -> Identity:
    """Who is looking: the labelled local operator in demo mode; the OIDC user with the
    role the mapping gives them when `[auth]` is configured; otherwise a read-only viewer."""
    settings = rt.settings
    if settings.demo:
        return Identity("local-operator", Role.OPERATOR, "demo")
    if _sign_in_configured() and st.user.is_logged_in:
        name = str(st.user.get("email") or st.user.get("name") or "unknown")
        claimed = st.user.get("groups")
        groups: list[str] = [str(g) for g in claimed] if isinstance(claimed, list) else []
        return Identity(name, role_for(name, groups, settings.roles, settings.default_role), "oidc")
    return Identity("anonymous", Role.VIEWER, "anonymous")


def identity_label(rt: Runtime) -> str:
    identity = current_identity(rt)
    if identity.via == "demo":
        return "👤 Local operator (demo mode — no sign-in)"
    if identity.via == "oidc":
        return f"👤 {identity.name} — {identity.role}"
    if _sign_in_configured():
        return "👁 Viewer — sign in to act"
    return "👁 Read-only viewer (no sign-in configured)"


def sign_in_controls(rt: Runtime) -> None:
    """Log in / log out buttons in the sidebar when OIDC sign-in is configured."""
    if rt.settings.demo or not _sign_in_configured():
        return
    if st.user.is_logged_in:
        st.sidebar.button("Log out", on_click=st.logout)
    else:
        st.sidebar.button("Log in", on_click=st.login)


def _sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def source_banner(overview: Overview, stale_after_seconds: int) -> None:
    """Where the numbers come from and how old they are; loud when degraded."""
    age = overview.data_age_seconds
    label = {"prometheus": "Prometheus (live)", "sql": "metrics database roll-ups"}.get(
        overview.source, "no source"
    )
    for notice in overview.notices:
        st.warning(notice, icon="⚠️")
    text = f"Source: **{label}** · data age: **{format_age(age)}** · {len(overview.rows)} flags"
    if age is None or age > stale_after_seconds:
        st.error(f"{text} — data is stale or missing", icon="⏱️")
    else:
        st.caption(text)


def query_list(name: str) -> list[str]:
    """A comma-separated query parameter as a list (empty when absent)."""
    raw = st.query_params.get(name, "")
    return [part for part in raw.split(",") if part]


def set_query_params(values: dict[str, str | Sequence[str]]) -> None:
    """Write the filters into the URL so a view can be shared; empty values are dropped."""
    flat = {k: v if isinstance(v, str) else ",".join(v) for k, v in values.items()}
    st.query_params.from_dict({k: v for k, v in flat.items() if v})
