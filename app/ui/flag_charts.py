"""The flag detail's charts (Plotly figures, no Streamlit): each applied change is drawn
on every chart, so a reader sees what a change did."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.express as px
import plotly.graph_objects as go

from app.services.flag_detail import ChangeMark, FlagDetail, Mitigation, latency_in_ms

__all__ = ["error_chart", "latency_chart", "mitigation_chart", "rate_chart", "with_changes"]


def with_changes(figure: go.Figure, changes: Sequence[ChangeMark]) -> go.Figure:
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


def rate_chart(detail: FlagDetail) -> go.Figure:
    """Evaluations per second by variant, stacked."""
    area = px.area(
        detail.variant_rates,
        x="timestamp",
        y="evaluations_per_second",
        color="variant",
        title="Evaluations per second by variant",
        labels={"evaluations_per_second": "evaluations/s", "timestamp": ""},
    )
    return with_changes(area, detail.changes)


def error_chart(detail: FlagDetail) -> go.Figure:
    """Failed evaluations per second."""
    errors = px.line(
        detail.error_rates,
        x="timestamp",
        y="errors_per_second",
        title="Failed evaluations per second",
        labels={"errors_per_second": "errors/s", "timestamp": ""},
    )
    return with_changes(errors, detail.changes)


def latency_chart(detail: FlagDetail) -> go.Figure:
    """One line per quantile (p50, p95, p99), in milliseconds."""
    lines = px.line(
        latency_in_ms(detail.latency),
        x="timestamp",
        y="ms",
        color="quantile",
        title="Evaluation latency",
        labels={"ms": "latency (ms)", "timestamp": ""},
    )
    return with_changes(lines, detail.changes)


def mitigation_chart(mitigation: Mitigation) -> go.Figure:
    """The rolled-back variant's rate around the rollback or kill."""
    rate = px.line(
        mitigation.series,
        x="timestamp",
        y="evaluations_per_second",
        title=f"Evaluations per second of {mitigation.variant!r} around the change",
        labels={"evaluations_per_second": "evaluations/s", "timestamp": ""},
    )
    return with_changes(rate, (mitigation.change,))
