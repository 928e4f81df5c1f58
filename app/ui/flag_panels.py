"""The Flag detail page's panels (Streamlit): the health line and the summary under the
flag's name, the guard report for its next step, its targeting rules and dependencies,
then the panels below the time range, each fed by one `FlagDetail`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import streamlit as st

from app.audit import AuditEntry
from app.evidence.comparison import VariantComparison, points
from app.evidence.gates import DifferencePath
from app.evidence.sequential import Arm
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagConfig, FlagDefinition
from app.rollout.action_model import Action, ActionPlan, ActionRequest
from app.rollout.guards import NO_VARIANT_ERRORS, GateArms, GuardResult
from app.rollout.roles import Identity
from app.runtime import Runtime
from app.services.flag_detail import (
    FlagDetail,
    dependencies_table,
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
from app.ui.flag_charts import (
    error_chart,
    evidence_chart,
    latency_chart,
    mitigation_chart,
    rate_chart,
)
from app.ui.overview_table import why_text
from app.unleash.mapping import feature_ui_url

__all__ = [
    "advance_preview",
    "dependencies_panel",
    "evidence_panel",
    "exposure_panel",
    "flag_summary",
    "guard_report_panel",
    "health_line",
    "history_panel",
    "metric_charts",
    "owner_line",
    "propagation_panel",
    "range_header",
    "remember_top",
    "rules_panel",
    "step_panel",
    "top_is_stale",
    "variant_errors_panel",
]


def health_line(
    rt: Runtime, environment: str, key: str, guards: Sequence[GuardResult] = ()
) -> None:
    """The flag's health badge and every reason it is not healthy, exactly as the
    overview judges it (its treatment against its control included), with the window
    its numbers are over; nothing when the overview lacks the flag. When the guards
    (`guards`, over their longer window since the step began) prove more, it says so:
    two windows, each named, never two verdicts on one."""
    row = next((r for r in rt.cached_overview(environment).rows if r.flag == key), None)
    if row is not None:
        why = why_text(row, datetime.now(UTC)) or "within every threshold"
        errors = "–" if row.error_rate is None else f"{100 * row.error_rate:.2f} %"
        window = f" {row.error_window}" if row.error_window else ""
        st.markdown(f"**{HEALTH_BADGES[row.health]}** {why} · errors {errors}{window}")
    proven = [g for g in guards if not g.passed and g.on_data]
    if proven:
        names = ", ".join(g.label.replace("_", " ") for g in proven)
        st.warning(
            f"The guards prove more {proven[0].window}: {names} failed on data (see the "
            "guard report below).",
            icon="⚠️",
        )


_TOP = "flag_detail_top"


def _top_state(snapshot: FlagSnapshot, key: str, history: Sequence[AuditEntry]) -> tuple[str, ...]:
    newest = max((entry.id for entry in history), default=0)
    return (snapshot.environment, key, snapshot.versions.get(key, ""), str(newest))


def remember_top(snapshot: FlagSnapshot, key: str, history: Sequence[AuditEntry]) -> None:
    """Note the flag's version and newest audit record the top of the page is drawn
    from (its state, rollout, buttons, guard report and autopilot status)."""
    st.session_state[_TOP] = _top_state(snapshot, key, history)


def top_is_stale(snapshot: FlagSnapshot, key: str, history: Sequence[AuditEntry]) -> bool:
    """Whether the panels below, refreshing on their own, see a flag version or an
    audit record newer than the top was drawn from: the page then redraws whole, so the
    top never shows a state older than the history below it."""
    drawn = st.session_state.get(_TOP)
    return drawn is not None and drawn != _top_state(snapshot, key, history)


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


def advance_preview(
    rt: Runtime, identity: Identity, environment: str, key: str
) -> ActionPlan | str:
    """The plan of an advance to the next step, measured now (the guard report), or why
    there is no next step."""
    try:
        return rt.preview(
            ActionRequest(Action.ADVANCE, environment, "(preview)", identity, flag=key)
        )
    except ValueError as error:
        return str(error)


def guard_report_panel(preview: ActionPlan | str) -> None:
    """The guards an advance to the next step would meet, measured now; or why there is
    no next step."""
    if isinstance(preview, str):
        st.info(f"No next step: {preview}")
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
    """Evaluations and errors per variant and treatment against control, since the step
    began: the guard report's counts, over its window."""
    st.markdown("#### Errors by variant")
    judged = detail.judged
    if judged is None or not detail.variant_errors:
        st.caption(f"No evaluations {detail.window or 'in the judged window'}.")
        return
    st.caption(f"Counted {detail.window}, as the guards count them.")
    st.dataframe(variant_error_table(detail.variant_errors), hide_index=True)
    gates = detail.gates
    if gates is None:
        return
    difference = gates.difference
    if difference is None:
        st.caption(f"Treatment against control: {NO_VARIANT_ERRORS}.")
        return
    compared = VariantComparison(
        judged.treatment,
        judged.baseline,
        difference.counts,
        difference.control or Arm(0.0, 0.0),
        difference.interval,
        difference.limit,
    ).summary
    if difference.fired:
        proof = difference.evidence
        there = "" if proof.estimate is None else f" ({points(proof.estimate)} there)"
        st.warning(
            f"{compared}: proven worse {proof.words}{there}: a rollback should help.", icon="⚠️"
        )
    else:
        st.caption(f"{compared}: not proven worse than allowed ({points(difference.limit)}).")


def evidence_panel(detail: FlagDetail, paths: Sequence[tuple[GateArms, DifferencePath]]) -> None:
    """Per gate comparing treatment with control (the flag's own, each guardrail): the
    difference over the step with its always-valid interval, the limit, and when it
    fired."""
    st.markdown(f"#### Evidence {detail.window or 'since the step began'}")
    if not paths:
        st.caption(
            f"Nothing to draw {detail.window or 'yet'}: no gate compares treatment with "
            "control here (no failures by variant, no guardrail) or no look has ended."
        )
        return
    columns = st.columns(min(len(paths), 2))
    for index, (arms, path) in enumerate(paths):
        columns[index % len(columns)].plotly_chart(evidence_chart(arms, path))


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
    """Configured against observed exposure since the step began (the split-decided
    evaluations) and whether a sample ratio mismatch is proven, as the exposure guard
    judges it; then what each instance applies."""
    st.markdown("#### Configured vs observed exposure")
    gates = detail.gates
    if gates is None or gates.exposure.estimate is None:
        st.info(
            f"No split evaluations {detail.window or 'in the judged window'}: exposure "
            "cannot be judged yet."
        )
    else:
        judged = gates.exposure
        observed = float(judged.estimate or 0.0)
        configured_col, observed_col, count_col = st.columns(3)
        configured_col.metric("Configured", f"{100 * gates.share:g} %")
        observed_col.metric("Observed", f"{100 * observed:.2f} %")
        count_col.metric("Split evaluations", f"{judged.counts.total:,.0f}")
        basis = (
            f"{judged.counts.total:,.0f} split evaluations {detail.window}; tolerance "
            f"±{100 * judged.limit:g} points"
        )
        if judged.fired:
            proof = judged.evidence
            share = "" if proof.estimate is None else f" ({100 * proof.estimate:.2f} % there)"
            st.error(
                f"Sample ratio mismatch proven {proof.words}{share}: {100 * observed:.2f} % "
                f"observed vs {100 * gates.share:g} % configured ({basis}).",
                icon="🚨",
            )
        elif not judged.within:
            st.warning(
                f"Outside tolerance, not yet proven: {100 * observed:.2f} % observed vs "
                f"{100 * gates.share:g} % configured ({basis}).",
                icon="⏳",
            )
        else:
            st.caption(f"Within tolerance, no sample ratio mismatch ({basis}).")
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
    st.markdown("#### Propagation and the treatment's exposure after a rollback")
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
    if not mitigation.proven_worse:
        st.caption(
            f"Nothing recorded with the {mitigation.change.action} proves the treatment was "
            "worse (a person's action records no evidence): its exposure falling is not "
            "called mitigating."
        )
    goal = mitigation.goal
    if mitigation.elapsed is None:
        st.warning(
            f"{mitigation.variant!r} is not (yet) {goal} after the {mitigation.change.action}.",
            icon="⏳",
        )
    else:
        st.metric(
            f"{mitigation.name} ({mitigation.variant!r} {goal})",
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
