"""Flag detail: one flag's configuration, the guard report for its next step, the
actions, its history, then its metrics over a time range with every applied change
drawn on each chart, exposure, step age, schedule, propagation and time to mitigate."""

from datetime import UTC, datetime

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.rollout.actions import Action, ActionRequest
from app.services.flag_detail import (
    DEFAULT_RANGE,
    RANGES,
    ChangeMark,
    FlagDetail,
    flag_detail_sources,
    load_flag_detail,
)
from app.ui.action_dialog import action_buttons, guard_table, show_last_outcome
from app.ui.format import SOURCE_LABELS, format_age, format_rate
from app.ui.widgets import LinkedWidgets, current_identity, environment_picker, runtime

QUANTILE_LABELS = {0.5: "p50", 0.95: "p95", 0.99: "p99"}

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

st.subheader(key)
st.caption(flag.metadata.description or "no description")
state_col, pct_col, phase_col, strategy_col = st.columns(4)
state_col.metric("State", str(flag.state))
pct_col.metric("Rollout", f"{flag.percentage:g} %")
phase_col.metric("Phase", str(flag.phase) if flag.phase else "–")
strategy_col.metric("Strategy", str(flag.rollout.strategy))

st.markdown("#### Actions")
action_buttons(rt, identity, environment, key, snapshot.versions, snapshot=snapshot)

st.markdown("#### Guard report for the next step")
try:
    preview = rt.plan(ActionRequest(Action.ADVANCE, environment, "(preview)", identity, flag=key))
except ValueError as error:
    st.info(f"No next step: {error}")
else:
    st.caption(" · ".join(t.diff for t in preview.transitions) + " — measured now")
    st.dataframe(guard_table(preview.guards), hide_index=True, width="stretch")

rules_col, deps_col = st.columns(2)
with rules_col:
    st.markdown("#### Targeting rules")
    if flag.targeting_rules:
        st.dataframe(
            pd.DataFrame(
                [(r.priority, r.name, r.condition, r.variant) for r in flag.ordered_rules],
                columns=["Priority", "Rule", "Condition", "Variant"],
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("None: every user goes through the rollout.")
with deps_col:
    st.markdown("#### Dependencies")
    if flag.metadata.dependencies:
        st.dataframe(
            pd.DataFrame(
                [
                    (d, f"{snapshot.config.flags[d].percentage:g} %")
                    for d in flag.metadata.dependencies
                ],
                columns=["Flag", "Rollout"],
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("None.")

st.markdown("#### History")
history = rt.audit.entries(flag=key, environment=environment, limit=100)
if history:
    st.dataframe(
        pd.DataFrame(
            [
                (
                    e.id,
                    e.at,
                    e.actor,
                    e.action,
                    f"{e.from_percentage:g} → {e.to_percentage:g} %",
                    str(e.outcome),
                    e.reason,
                )
                for e in history
            ],
            columns=["Audit", "At (UTC)", "Actor", "Action", "Change", "Outcome", "Reason"],
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No recorded change.")

st.markdown("#### Metrics over time")
range_col, refresh_col = st.columns([3, 1])
range_name = widgets.radio(range_col, "Time range", "range", list(RANGES), default=DEFAULT_RANGE)
REFRESH = {"off": None, "10 s": 10, "30 s": 30, "1 min": 60, "5 min": 300}
refresh_name = widgets.selectbox(refresh_col, "Refresh", "refresh", list(REFRESH), default="30 s")
refresh_name = refresh_name or "30 s"
widgets.sync()


def with_changes(figure: go.Figure, changes: tuple[ChangeMark, ...]) -> go.Figure:
    """Every applied change as a dotted vertical line labelled '25 → 50 % · actor';
    labels alternate between two heights so close changes stay readable."""
    for index, change in enumerate(changes):
        figure.add_shape(
            type="line",
            x0=change.at,
            x1=change.at,
            y0=0,
            y1=1,
            yref="paper",
            line={"dash": "dot", "color": "grey"},
        )
        figure.add_annotation(
            x=change.at,
            y=1,
            yref="paper",
            text=change.label,
            showarrow=False,
            yanchor="bottom",
            yshift=14 * (index % 2),
        )
    return figure


def metric_charts(detail: FlagDetail) -> None:
    rates_col, errors_col, latency_col = st.columns(3)
    if detail.variant_rates.empty:
        rates_col.info("No evaluations in this range.")
    else:
        area = px.area(
            detail.variant_rates,
            x="timestamp",
            y="evaluations_per_second",
            color="variant",
            title="Evaluations per second by variant",
            labels={"evaluations_per_second": "evaluations/s", "timestamp": ""},
        )
        rates_col.plotly_chart(with_changes(area, detail.changes))
    if detail.error_rates.empty:
        errors_col.info("No error counts in this range.")
    else:
        errors = px.line(
            detail.error_rates,
            x="timestamp",
            y="errors_per_second",
            title="Failed evaluations per second",
            labels={"errors_per_second": "errors/s", "timestamp": ""},
        )
        errors_col.plotly_chart(with_changes(errors, detail.changes))
    if detail.latency.empty:
        latency_col.info("No latency observations in this range.")
    else:
        latency = detail.latency.assign(
            quantile=detail.latency["quantile"].map(lambda q: QUANTILE_LABELS.get(q, f"q{q:g}")),
            ms=1000 * detail.latency["seconds"].astype(float),
        )
        lines = px.line(
            latency,
            x="timestamp",
            y="ms",
            color="quantile",
            title="Evaluation latency",
            labels={"ms": "latency (ms)", "timestamp": ""},
        )
        latency_col.plotly_chart(with_changes(lines, detail.changes))


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
        if check.mismatch:
            st.error(
                f"Sample ratio mismatch: {100 * check.observed:.2f} % observed vs "
                f"{100 * check.configured:g} % configured ({basis}; p < 0.001).",
                icon="🚨",
            )
        else:
            st.caption(f"No sample ratio mismatch ({basis}; flagged when p < 0.001).")
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
        st.dataframe(
            pd.DataFrame(
                [
                    (
                        step.at,
                        f"{step.percentage:g} %",
                        "next"
                        if step == detail.next_step
                        else ("done" if step.at <= detail.end else "upcoming"),
                    )
                    for step in detail.schedule
                ],
                columns=["At (UTC)", "Percentage", "Status"],
            ),
            hide_index=True,
        )
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
        where = SOURCE_LABELS.get(view.source, view.source)
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
    if mitigation.elapsed is None:
        st.warning(
            f"Evaluations of {mitigation.variant!r} are not (yet) below "
            f"{100 * mitigation.threshold:g} % of their rate before the "
            f"{mitigation.change.action}.",
            icon="⏳",
        )
    else:
        st.metric(
            f"Time to mitigate ({mitigation.variant!r} below 1 % of its rate before)",
            format_age(mitigation.elapsed.total_seconds()),
        )
    if not mitigation.series.empty:
        rate = px.line(
            mitigation.series,
            x="timestamp",
            y="evaluations_per_second",
            title=f"Evaluations per second of {mitigation.variant!r} around the change",
            labels={"evaluations_per_second": "evaluations/s", "timestamp": ""},
        )
        st.plotly_chart(with_changes(rate, (mitigation.change,)))


@st.fragment(run_every=REFRESH[refresh_name])
def detail_panels() -> None:
    detail = load_flag_detail(
        flag_detail_sources(rt.prometheus, rt.engine),
        snapshot,
        key,
        history,
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
        f"Source: **{SOURCE_LABELS.get(detail.source, 'no source')}** · data age: "
        f"**{format_age(detail.data_age_seconds)}** · one point per "
        f"{format_age(detail.step.total_seconds())} · latest {newest_rate} · "
        f"{len(detail.changes)} applied change(s) drawn"
    )
    metric_charts(detail)
    exposure_panel(detail)
    step_panel(detail)
    propagation_panel(detail)


detail_panels()
