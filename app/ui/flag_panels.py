"""The Flag detail page's panels (Streamlit): the health line and the summary under the
flag's name, the guard report for its next step, its targeting rules and dependencies,
then the panels below the time range, each fed by one `FlagDetail`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from app.analysis.exposure import SRM_P_VALUE
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagConfig, FlagDefinition
from app.rollout.action_model import Action, ActionRequest
from app.rollout.guards import NO_VARIANT_ERRORS
from app.rollout.roles import Identity
from app.runtime import Runtime
from app.services.flag_detail import (
    FlagDetail,
    dependencies_table,
    flag_detail_sources,
    flag_health_report,
    history_table,
    rules_table,
    schedule_table,
    serving_text,
    variant_error_table,
)
from app.services.overview import ExternalEdit
from app.settings import FlagBackendKind
from app.text import HEALTH_BADGES, escape_markdown, format_age, format_rate, source_label
from app.ui.action_dialog import guard_table
from app.ui.flag_charts import error_chart, latency_chart, mitigation_chart, rate_chart
from app.ui.overview_table import why_text
from app.unleash.mapping import feature_ui_url

__all__ = [
    "dependencies_panel",
    "exposure_panel",
    "flag_summary",
    "guard_report_panel",
    "health_line",
    "history_panel",
    "metric_charts",
    "owner_line",
    "propagation_panel",
    "range_header",
    "rules_panel",
    "step_panel",
    "variant_errors_panel",
]


def health_line(rt: Runtime, environment: str, snapshot: FlagSnapshot, key: str) -> None:
    """The flag's health badge and every reason it is not healthy, as the overview judges
    it plus its treatment against its control; nothing when the overview lacks the flag."""
    row = next((r for r in rt.cached_overview(environment).rows if r.flag == key), None)
    if row is not None:
        sources, window = flag_detail_sources(rt.sources), rt.settings.rate_window
        now = datetime.now(UTC)
        health = flag_health_report(sources, snapshot, row, rt.thresholds, window, now, [])
        why = why_text(replace(row, reasons=health.reasons), now)
        st.markdown(f"**{HEALTH_BADGES[health.health]}** {why or 'within every threshold'}")


def flag_summary(flag: FlagDefinition) -> None:
    """State, rollout %, phase and strategy, then who is served what."""
    # the strategy ("percentage", "user_list") gets the room a value needs at 1024 px
    state_col, pct_col, phase_col, strategy_col = st.columns([2, 2, 1, 3])
    state_col.metric("State", str(flag.state))
    pct_col.metric("Rollout", f"{flag.percentage:g} %")
    phase_col.metric("Phase", str(flag.phase) if flag.phase else "–")
    strategy_col.metric("Strategy", str(flag.rollout.strategy))
    st.caption(escape_markdown(serving_text(flag)))


def owner_line(rt: Runtime, flag: FlagDefinition) -> None:
    """Who owns the flag (`metadata.owner`) and, where the flag lives in a flag server,
    a link to it there: what on-call looks for first."""
    owner = flag.metadata.owner.strip()
    said = f"Owner: **{escape_markdown(owner)}**" if owner else "Owner: not set"
    if not owner:
        said += " (`metadata.owner` in the flag config)"
    settings = rt.settings
    if settings.flag_backend is FlagBackendKind.UNLEASH and settings.unleash_url:
        url = feature_ui_url(settings.unleash_url, settings.unleash_project, flag.key)
        said += f" · [Open {escape_markdown(flag.key)} in Unleash ↗]({url})"
    st.markdown(said)


def guard_report_panel(rt: Runtime, identity: Identity, environment: str, key: str) -> None:
    """The guards an advance to the next step would meet, measured now; or why there is
    no next step."""
    try:
        preview = rt.preview(
            ActionRequest(Action.ADVANCE, environment, "(preview)", identity, flag=key)
        )
    except ValueError as error:
        st.info(f"No next step: {error}")
    else:
        st.caption(" · ".join(t.diff for t in preview.transitions) + " — measured now")
        st.dataframe(guard_table(preview.guards), hide_index=True, width="stretch")


def rules_panel(flag: FlagDefinition) -> None:
    """The flag's targeting rules, or a note that every user goes through the rollout."""
    if flag.targeting_rules:
        st.dataframe(rules_table(flag), hide_index=True, width="stretch")
    else:
        st.caption("None: every user goes through the rollout.")


def dependencies_panel(config: FlagConfig, flag: FlagDefinition) -> None:
    """Each flag this one depends on and whether it is complete."""
    if flag.metadata.dependencies:
        st.dataframe(dependencies_table(config, flag), hide_index=True, width="stretch")
    else:
        st.caption("None.")


def range_header(detail: FlagDetail) -> None:
    """The notices of the sources tried, the retention note, and the source line: who
    answered, how old the data is, the point spacing, the newest rate, changes drawn."""
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


def variant_errors_panel(detail: FlagDetail) -> None:
    """Evaluations and errors per variant over the range, and treatment against control."""
    st.markdown(f"#### Errors by variant over the last {detail.range_name}")
    if not detail.variant_errors:
        st.caption("No evaluations in this range.")
        return
    st.dataframe(variant_error_table(detail.variant_errors), hide_index=True)
    if not detail.variant_failures:
        st.caption(f"Treatment against control: {NO_VARIANT_ERRORS}.")
    elif detail.comparison is not None:
        words = detail.comparison.words
        if detail.comparison.worse:
            st.warning(f"{words}: a rollback should help.", icon="⚠️")
        else:
            st.caption(words)


def metric_charts(detail: FlagDetail) -> None:
    """Evaluations by variant, errors and latency side by side, or why one is empty."""
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
    """Configured against observed exposure and the sample ratio test, then what each
    instance applies."""
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
    """How long the flag has been at its percentage, and the gradual schedule."""
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
    """Who loaded the config of the newest applied change, and the time to mitigate."""
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


def history_panel(detail: FlagDetail, outside_changes: Sequence[ExternalEdit] | None) -> None:
    """The flag's recorded changes, then those made in the flag server itself (of
    `outside_changes`, the environment's, None when its log did not answer)."""
    st.markdown("#### History")
    if detail.history:
        st.dataframe(history_table(detail.history), hide_index=True, width="stretch")
    else:
        st.caption("No recorded change.")
    outside = [c for c in outside_changes or () if c.flag == detail.flag]
    if outside:
        now = datetime.now(UTC)
        st.caption("Made in Unleash itself (its event log), not through the dashboard:")
        st.markdown(
            "\n".join(
                f"- {format_age((now - c.at).total_seconds())} ago · {escape_markdown(c.label)}"
                for c in outside[:20]
            )
        )
