"""The flag detail's charts (Plotly figures, no Streamlit): each applied change is drawn
on every chart, so a reader sees what a change did."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
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


def _over_time(
    draw: Callable[..., go.Figure],
    frame: pd.DataFrame,
    y: str,
    y_title: str,
    title: str,
    changes: Sequence[ChangeMark],
    color: str | None = None,
) -> go.Figure:
    """`draw` (a Plotly Express function) of `y` over `timestamp`, a trace per `color`
    value, with the changes marked."""
    figure = draw(
        frame,
        x="timestamp",
        y=y,
        color=color,
        title=title,
        labels={y: y_title, "timestamp": ""},
    )
    return with_changes(figure, changes)


def rate_chart(detail: FlagDetail) -> go.Figure:
    """Evaluations per second by variant, stacked."""
    return _over_time(
        px.area,
        detail.variant_rates,
        "evaluations_per_second",
        "evaluations/s",
        "Evaluations per second by variant",
        detail.changes,
        color="variant",
    )


def error_chart(detail: FlagDetail) -> go.Figure:
    """Failed evaluations per second."""
    return _over_time(
        px.line,
        detail.error_rates,
        "errors_per_second",
        "errors/s",
        "Failed evaluations per second",
        detail.changes,
    )


def latency_chart(detail: FlagDetail) -> go.Figure:
    """One line per quantile (p50, p95, p99), in milliseconds."""
    return _over_time(
        px.line,
        latency_in_ms(detail.latency),
        "ms",
        "latency (ms)",
        "Evaluation latency",
        detail.changes,
        color="quantile",
    )


def mitigation_chart(mitigation: Mitigation) -> go.Figure:
    """The rolled-back variant's rate around the rollback or kill."""
    return _over_time(
        px.line,
        mitigation.series,
        "evaluations_per_second",
        "evaluations/s",
        f"Evaluations per second of {mitigation.variant!r} around the change",
        (mitigation.change,),
    )
