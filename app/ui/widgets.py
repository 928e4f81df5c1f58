"""Streamlit pieces every page shares: the process runtime, the source/age banner,
the identity label and query-parameter helpers."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app.overview import Overview
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from app.ui.format import format_age

__all__ = ["identity_label", "query_list", "runtime", "source_banner"]


@st.cache_resource
def runtime() -> Runtime:
    """One runtime per server process, shared by every session."""
    return open_runtime(load_settings())


def identity_label(rt: Runtime) -> str:
    if rt.settings.demo:
        return "👤 Local operator (demo mode — no sign-in)"
    return "👁 Read-only viewer (no sign-in configured)"


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
