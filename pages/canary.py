"""Canary: canary vs baseline (stable) error ratio and p99 latency, with a verdict."""

from datetime import UTC, datetime

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.analysis.canary import CanaryPolicy, Verdict
from app.analysis.canary_analysis import load_canary
from app.flags.loader import ConfigInvalid
from app.rollout.action_model import Action
from app.services.canary import (
    TRACK_COLOURS,
    canary_failing_since,
    canary_killed_note,
    error_ratio_frame,
    error_ratio_tolerance,
    latency_ms_frame,
    latency_tolerance,
    metric_table,
    parse_window,
    request_count_table,
)
from app.text import format_age, source_label
from app.ui.action_dialog import action_buttons, show_last_outcome
from app.ui.widgets import LinkedWidgets, current_identity, environment_picker, runtime

WINDOWS = ["15m", "30m", "1h", "3h"]

rt = runtime()
st.title("🐤 Canary")
st.caption("Canary (track=canary) against the baseline (track=stable), refreshed live.")

widgets = LinkedWidgets("canary")
env_col, window_col, _ = st.columns([2, 2, 6])
environment = environment_picker(widgets, rt, env_col)
window_text = widgets.selectbox(window_col, "Window", "window", WINDOWS, default=WINDOWS[0])
window_text = window_text or WINDOWS[0]
widgets.sync()

POLICY = CanaryPolicy()
identity = current_identity(rt)
show_last_outcome()
canary_flag = rt.settings.canary_flag
try:
    snapshot = rt.backend.load(environment)
except ConfigInvalid as error:
    snapshot = None
    st.error(f"The flag config cannot be read, so the canary's flag is unknown: {error}")
if snapshot is not None and canary_flag in snapshot.config.flags:
    flag = snapshot.config.flag(canary_flag)
    flag_col, abort_col = st.columns([3, 2], vertical_alignment="center")
    with flag_col:
        st.markdown(
            f"The canary belongs to flag **{canary_flag}** in {environment}: "
            f"{flag.state}, at **{flag.percentage:g} %**."
        )
        st.page_link(
            "../pages/flag_detail.py",
            label=f"Open {canary_flag} on Flag detail",
            icon="🔎",
            query_params={"env": environment, "flag": canary_flag},
        )
    with abort_col:
        st.markdown("**Abort the canary**")
        action_buttons(
            rt,
            identity,
            environment,
            canary_flag,
            snapshot.versions,
            actions=(Action.ROLLBACK, Action.KILL),
            snapshot=snapshot,
        )
elif snapshot is not None:
    st.warning(
        f"No flag **{canary_flag}** in {environment}: set `ROLLOUT_CANARY_FLAG` to the flag "
        "the canary belongs to, to link it and offer Abort here.",
        icon="⚠️",
    )


def _tolerance_line(figure: go.Figure, limit: float, text: str) -> None:
    """The red dashed line beyond which a metric fails, labelled `text`."""
    figure.add_hline(
        y=limit,
        line_dash="dash",
        line_color="#CC0000",
        annotation_text=text,
        annotation_position="top left",
    )


@st.fragment(run_every=rt.settings.refresh_seconds)
def canary_panel() -> None:
    analysis = load_canary(
        rt.sources.canary(),
        environment,
        parse_window(window_text),
        datetime.now(UTC),
        notices=rt.notices,
    )
    for notice in analysis.notices:
        st.warning(notice, icon="⚠️")
    age = analysis.data_age_seconds
    st.caption(
        f"Source: **{source_label(analysis.source)}** · "
        f"data age: **{format_age(age)}** · window {window_text}"
    )

    verdict = analysis.report.verdict
    headline = f"Canary verdict: {verdict.upper()}"
    show = {
        Verdict.PASS: st.success,
        Verdict.MARGINAL: st.warning,
        Verdict.FAIL: st.error,
        Verdict.INCONCLUSIVE: st.info,
    }[verdict]
    show(f"## {headline}", icon={"pass": "✅", "marginal": "⚠️", "fail": "🛑"}.get(verdict, "❔"))
    key = f"canary_verdict:{environment}:{window_text}"
    previous = st.session_state.get(key)
    if previous is not None and previous != verdict:
        st.toast(f"Canary verdict changed: {previous} → {verdict}", icon="🔔")
    st.session_state[key] = verdict
    if snapshot is not None and canary_flag in snapshot.config.flags:
        killed = canary_killed_note(
            snapshot.config.flag(canary_flag),
            rt.audit.latest_applied(environment, canary_flag),
            parse_window(window_text),
            analysis.at,
        )
        if killed is not None:
            st.warning(killed, icon="🛑")
    since = canary_failing_since(analysis, POLICY)
    if since is not None:
        st.markdown(f"⏱️ **{since}**")

    if not analysis.report.metrics:
        st.info("No metrics to judge: no source answered.")
        return
    st.dataframe(metric_table(analysis.report), hide_index=True, width="stretch")
    st.markdown(f"**Requests per track** over the last {window_text}")
    st.dataframe(request_count_table(analysis.counts), hide_index=True)

    ratio_col, latency_col = st.columns(2)
    ratios = error_ratio_frame(analysis.counts)
    if ratios.empty:
        ratio_col.info("No requests in this window.")
    else:
        bars = px.bar(
            ratios,
            x="track",
            y="error_ratio",
            color="track",
            color_discrete_map=TRACK_COLOURS,
            title=f"Error ratio over the last {window_text}",
            labels={"error_ratio": "error ratio", "track": "track"},
        )
        bars.update_layout(yaxis_tickformat=".2%", showlegend=False)
        limit = error_ratio_tolerance(analysis.counts, POLICY)
        if limit is not None:
            _tolerance_line(bars, limit, f"tolerance {100 * limit:.2f} %")
        ratio_col.plotly_chart(bars)
    if analysis.latency.empty:
        latency_col.info("No latency observations in this window.")
    else:
        lines = px.line(
            latency_ms_frame(analysis.latency),
            x="timestamp",
            y="ms",
            color="track",
            markers=True,
            color_discrete_map=TRACK_COLOURS,
            title="p99 latency per step",
            labels={"ms": "p99 (ms)", "timestamp": ""},
        )
        limit = latency_tolerance(analysis.latency, POLICY)
        if limit is not None:  # in ms, as the axis and the metric table
            _tolerance_line(
                lines,
                1000 * limit,
                f"tolerance {1000 * limit:.0f} ms (stable median + "
                f"{100 * POLICY.latency_tolerance:g} %)",
            )
        latency_col.plotly_chart(lines)


canary_panel()

with st.expander("How the verdict is made"):
    policy = CanaryPolicy()
    st.markdown(
        f"""
Each metric is judged like Kayenta's Mann-Whitney judge (NetflixACAJudge): it **fails**
only when the canary is worse with **{100 * (1 - policy.alpha):g} % confidence** *and* by
more than a tolerance.

- **Error ratio** (5xx / requests over the window): one-sided pooled two-proportion
  z-test that the canary's ratio exceeds stable's; tolerance
  +{100 * policy.error_ratio_tolerance:g} % relative (at least
  +{100 * policy.error_ratio_floor:g} point). Fewer than {policy.min_requests} requests
  on either track → *inconclusive*.
- **p99 latency**: the p99 of each step of the window (15 steps, at least 1 min each),
  compared with a one-sided Mann-Whitney U test; tolerance
  +{100 * policy.latency_tolerance:g} % on the medians. Fewer than
  {policy.min_intervals} steps with data on either track → *inconclusive*.
- Significant but within tolerance, or beyond tolerance but not significant →
  *marginal*.
- **Overall** (Argo Rollouts' analysis style): any fail → fail; else any marginal →
  marginal; all inconclusive → inconclusive; else pass.
"""
    )
