"""Flag detail: one flag's health and why, its configuration, the actions and the guard
report for its next step, its rollout plan (the autopilot: timeline, events, Pause /
Resume / Abort, the plan editor), then (refreshing on their own) its metrics over a time
range with every applied change drawn on each chart, errors by variant, exposure, step
age, schedule, propagation, time to mitigate and history."""

from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from app.analysis.exposure import SRM_P_VALUE
from app.rollout.action_model import Action, ActionRequest
from app.services.flag_detail import (
    DEFAULT_RANGE,
    DEFAULT_REFRESH,
    RANGES,
    REFRESH,
    FlagDetail,
    dependencies_table,
    flag_detail_sources,
    flag_health_report,
    history_table,
    load_flag_detail,
    rules_table,
    schedule_table,
    serving_text,
    variant_error_table,
)
from app.ui.action_dialog import action_buttons, guard_table, show_last_outcome
from app.ui.autopilot import autopilot_panel, heartbeat_banner, planned
from app.ui.deliveries import render_failed_deliveries
from app.ui.flag_charts import error_chart, latency_chart, mitigation_chart, rate_chart
from app.ui.format import HEALTH_BADGES, escape_markdown, format_age, format_rate, source_label
from app.ui.overview_table import why_text
from app.ui.pending_requests import flag_request_notice
from app.ui.widgets import (
    LinkedWidgets,
    current_identity,
    emitter_caption,
    environment_picker,
    runtime,
)

rt = runtime()
identity = current_identity(rt)
st.title("🔎 Flag detail")
show_last_outcome()

widgets = LinkedWidgets("flag_detail")
env_col, flag_col = st.columns([1, 3])
environment = environment_picker(widgets, rt, env_col)
snapshot = rt.backend.load(environment)
keys = sorted(snapshot.config.flags)
key = widgets.selectbox(
    flag_col,
    "Flag",
    "flag",
    keys,
    default=keys[0] if keys else None,
    missing=lambda unknown: f"no flag {unknown} in {environment}",
)
widgets.sync()
if key is None:
    st.info(f"Choose a flag of {environment} above.", icon="👆")
    st.stop()
flag = snapshot.flag(key)
heartbeat_banner(rt, planned(rt, environment, key))
if rt.settings.webhooks:
    render_failed_deliveries(rt)

st.subheader(key)
st.caption(flag.metadata.description or "no description")
emitter_caption(rt)
row = next((r for r in rt.cached_overview(environment).rows if r.flag == key), None)
if row is not None:
    sources, window = flag_detail_sources(rt.sources), rt.settings.rate_window
    now = datetime.now(UTC)
    health = flag_health_report(sources, snapshot, row, rt.thresholds, window, now, [])
    why = why_text(replace(row, reasons=health.reasons), now)
    st.markdown(f"**{HEALTH_BADGES[health.health]}** {why or 'within every threshold'}")
state_col, pct_col, phase_col, strategy_col = st.columns(4)
state_col.metric("State", str(flag.state))
pct_col.metric("Rollout", f"{flag.percentage:g} %")
phase_col.metric("Phase", str(flag.phase) if flag.phase else "–")
strategy_col.metric("Strategy", str(flag.rollout.strategy))
st.caption(escape_markdown(serving_text(flag)))

st.markdown("#### Actions")
flag_request_notice(rt, environment, key)
action_buttons(rt, identity, environment, key, snapshot.versions, snapshot=snapshot)

st.markdown("#### Guard report for the next step")
try:
    preview = rt.preview(
        ActionRequest(Action.ADVANCE, environment, "(preview)", identity, flag=key)
    )
except ValueError as error:
    st.info(f"No next step: {error}")
else:
    st.caption(" · ".join(t.diff for t in preview.transitions) + " — measured now")
    st.dataframe(guard_table(preview.guards), hide_index=True, width="stretch")

st.markdown("#### Autopilot")
autopilot_panel(rt, identity, snapshot, key)

rules_col, deps_col = st.columns(2)
with rules_col:
    st.markdown("#### Targeting rules")
    if flag.targeting_rules:
        st.dataframe(rules_table(flag), hide_index=True, width="stretch")
    else:
        st.caption("None: every user goes through the rollout.")
with deps_col:
    st.markdown("#### Dependencies")
    if flag.metadata.dependencies:
        st.dataframe(dependencies_table(snapshot.config, flag), hide_index=True, width="stretch")
    else:
        st.caption("None.")

st.markdown("#### Metrics over time")
range_col, refresh_col = st.columns([3, 1])
range_name = widgets.radio(range_col, "Time range", "range", list(RANGES), default=DEFAULT_RANGE)
refresh_name = widgets.selectbox(
    refresh_col, "Refresh", "refresh", list(REFRESH), default=DEFAULT_REFRESH
)
refresh_name = refresh_name or DEFAULT_REFRESH
widgets.sync()


def variant_errors_panel(detail: FlagDetail) -> None:
    st.markdown(f"#### Errors by variant over the last {detail.range_name}")
    if not detail.variant_errors:
        st.caption("No evaluations in this range.")
        return
    st.dataframe(variant_error_table(detail.variant_errors), hide_index=True)
    if detail.comparison is not None:
        words = detail.comparison.words
        if detail.comparison.worse:
            st.warning(f"{words}: a rollback should help.", icon="⚠️")
        else:
            st.caption(words)


def metric_charts(detail: FlagDetail) -> None:
    rates_col, errors_col, latency_col = st.columns(3)
    if detail.variant_rates.empty:
        rates_col.info("No evaluations in this range.")
    else:
        rates_col.plotly_chart(rate_chart(detail))
    if detail.error_rates.empty:
        errors_col.info("No error counts in this range.")
    else:
        errors_col.plotly_chart(error_chart(detail))
    if detail.latency.empty:
        latency_col.info("No latency observations in this range.")
    else:
        latency_col.plotly_chart(latency_chart(detail))


def exposure_panel(detail: FlagDetail) -> None:
    st.markdown("#### Configured vs observed exposure")
    window = format_age(detail.exposure_window.total_seconds())
    check = detail.exposure
    if check is None:
        st.info(f"No split evaluations in the last {window}: exposure cannot be judged.")
    else:
        configured_col, observed_col, chi_col, p_col = st.columns(4)
        configured_col.metric("Configured", f"{100 * check.configured:g} %")
        observed_col.metric("Observed", f"{100 * check.observed:.2f} %")
        chi_col.metric("Chi-square", "–" if check.chi2 is None else f"{check.chi2:.2f}")
        p_col.metric("p-value", "–" if check.p_value is None else f"{check.p_value:.3g}")
        basis = f"{check.total:.0f} split evaluations over the last {window}"
        if detail.exposure_settling:
            st.info(
                f"Settling: the last change was {window} ago; exposure is judged once "
                f"evaluations under the new config have accumulated ({basis}).",
                icon="⏳",
            )
        elif check.mismatch:
            st.error(
                f"Sample ratio mismatch: {100 * check.observed:.2f} % observed vs "
                f"{100 * check.configured:g} % configured ({basis}; p < {SRM_P_VALUE:g}).",
                icon="🚨",
            )
        else:
            st.caption(f"No sample ratio mismatch ({basis}; flagged when p < {SRM_P_VALUE:g}).")
    applied = detail.applied_percentages
    if applied is None:
        st.caption("Per-instance applied percentage: not available from the database.")
    elif applied.empty:
        st.caption("Per-instance applied percentage: no instance reports one.")
    else:
        st.dataframe(
            applied.rename(columns={"instance": "Instance", "percentage": "Applied %"}),
            hide_index=True,
        )


def step_panel(detail: FlagDetail) -> None:
    age = detail.step_age
    if age is None or age.since is None or age.age is None:
        st.caption("No applied change recorded: the time at this step is unknown.")
    elif age.stuck:
        st.warning(
            f"Stuck: at {age.percentage:g} % for {format_age(age.age.total_seconds())} "
            f"(longer than {format_age(age.limit.total_seconds())}).",
            icon="🐌",
        )
    else:
        st.caption(f"At {age.percentage:g} % for {format_age(age.age.total_seconds())}.")
    if detail.schedule:
        st.markdown("#### Gradual schedule")
        st.dataframe(schedule_table(detail), hide_index=True)
        if detail.next_step is None:
            st.caption("Every scheduled step has come.")
        else:
            wait = (detail.next_step.at - datetime.now(UTC)).total_seconds()
            st.caption(
                f"Next step: {detail.next_step.percentage:g} % at "
                f"{detail.next_step.at:%Y-%m-%d %H:%M} UTC (in {format_age(max(0.0, wait))})."
            )


def propagation_panel(detail: FlagDetail) -> None:
    st.markdown("#### Propagation and time to mitigate")
    view = detail.propagation
    if view is None:
        st.caption("No applied change recorded: nothing to propagate.")
        return
    st.caption(
        f"Most recent applied change: {view.change.label}, {view.change.at:%Y-%m-%d %H:%M} UTC"
    )
    if view.result is None:
        st.info("No source reports instance config versions.")
    elif view.result.total == 0:
        where = source_label(view.source)
        st.info(f"No instance reports its config version ({where}).")
    else:
        loaded, total, laggards = view.result
        text = f"{loaded} of {total} instances loaded config {view.wanted}"
        if laggards:
            st.warning(f"{text}; behind: {', '.join(laggards)}", icon="⏳")
        else:
            st.success(text, icon="✅")
    mitigation = detail.mitigation
    if mitigation is None:
        st.caption("Time to mitigate is measured after a rollback or kill.")
        return
    goal = mitigation.goal
    if mitigation.elapsed is None:
        st.warning(
            f"{mitigation.variant!r} is not (yet) {goal} after the {mitigation.change.action}.",
            icon="⏳",
        )
    else:
        st.metric(
            f"Time to mitigate ({mitigation.variant!r} {goal})",
            format_age(mitigation.elapsed.total_seconds()),
        )
    if not mitigation.series.empty:
        st.plotly_chart(mitigation_chart(mitigation))


def history_panel(detail: FlagDetail) -> None:
    st.markdown("#### History")
    if detail.history:
        st.dataframe(history_table(detail.history), hide_index=True, width="stretch")
    else:
        st.caption("No recorded change.")
    outside = [c for c in rt.outside_changes(environment) or () if c.flag == key]
    if outside:
        now = datetime.now(UTC)
        st.caption("Made in Unleash itself (its event log), not through the dashboard:")
        st.markdown(
            "\n".join(
                f"- {format_age((now - c.at).total_seconds())} ago · {escape_markdown(c.label)}"
                for c in outside[:20]
            )
        )


@st.fragment(run_every=REFRESH[refresh_name])
def detail_panels() -> None:
    """Everything below reloads its own inputs on each refresh: the flag as it is now
    and its history, so another operator's change shows without a full rerun."""
    detail = load_flag_detail(
        flag_detail_sources(rt.sources),
        rt.backend.load(environment),
        key,
        rt.audit.entries(flag=key, environment=environment, limit=100),
        range_name,
        datetime.now(UTC),
        notices=rt.notices,
    )
    for notice in detail.notices:
        st.warning(notice, icon="⚠️")
    if detail.beyond_retention:
        st.info(
            f"The {detail.range_name} range reaches beyond Prometheus's retention "
            f"({format_age(detail.retention.total_seconds())}): it reads the metrics "
            "database roll-ups."
        )
    latest = detail.latest_rate
    newest_rate = "–" if latest is None else format_rate(latest)
    st.caption(
        f"Source: **{source_label(detail.source)}** · data age: "
        f"**{format_age(detail.data_age_seconds)}** · one point per "
        f"{format_age(detail.step.total_seconds())} · latest {newest_rate} · "
        f"{len(detail.changes)} applied change(s) drawn"
    )
    metric_charts(detail)
    variant_errors_panel(detail)
    exposure_panel(detail)
    step_panel(detail)
    propagation_panel(detail)
    history_panel(detail)


detail_panels()
