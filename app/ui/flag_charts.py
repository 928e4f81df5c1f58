"""The flag detail's charts (Plotly figures, no Streamlit): each applied change is drawn
on every chart, so a reader sees what a change did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from app.evidence.gates import DifferencePath
from app.rollout.guards import GateArms
from app.services.flag_detail import ChangeMark, FlagDetail, Mitigation, latency_in_ms

__all__ = [
    "error_chart",
    "evidence_chart",
    "label_lanes",
    "latency_chart",
    "mitigation_chart",
    "rate_chart",
    "with_changes",
]


#: how many rows of change labels a chart stacks above its plot before it shortens one
LABEL_LANES = 4
_LANE_PX = 16
#: a label's width as a share of the plot, per character (about 7 px of a 700 px plot)
_CHAR_SHARE = 0.01


def label_lanes(
    times: Sequence[datetime], widths: Sequence[timedelta], lanes: int = LABEL_LANES
) -> list[int | None]:
    """Per label (starting at its time, `width` long, in any order) the lowest row free at
    its time, taken in time order; None when all `lanes` rows are taken there (the label
    is then drawn short, its words in the hover). Labels never overlap."""
    ends: list[datetime] = []
    found: list[int | None] = [None] * len(times)
    for index in sorted(range(len(times)), key=lambda i: times[i]):
        at = times[index]
        lane = next((row for row, end in enumerate(ends) if end <= at), None)
        if lane is None and len(ends) < lanes:
            lane = len(ends)
            ends.append(at)
        if lane is not None:
            ends[lane] = at + widths[index]
        found[index] = lane
    return found


def _span(figure: go.Figure, changes: Sequence[ChangeMark]) -> timedelta:
    """The time the chart's x axis covers (its traces and the changes)."""
    moments = [pd.Timestamp(change.at) for change in changes]
    for trace in figure.data:
        xs = getattr(trace, "x", None)
        if xs is not None and len(xs):
            moments += [pd.Timestamp(min(xs)), pd.Timestamp(max(xs))]
    moments = [m if m.tzinfo is not None else m.tz_localize("UTC") for m in moments]
    span = (max(moments) - min(moments)).to_pytimedelta() if moments else timedelta(0)
    return span if span > timedelta(0) else timedelta(hours=1)


def with_changes(figure: go.Figure, changes: Sequence[ChangeMark]) -> go.Figure:
    """Every applied change as a dotted vertical line labelled '25 → 50 % · actor' to its
    right; labels that would overlap go to rows above each other (`label_lanes`), and
    past the last row a label shows as '•' with its words in the hover."""
    span = _span(figure, changes)
    widths = [span * min(0.6, _CHAR_SHARE * len(change.label)) for change in changes]
    lanes = label_lanes([change.at for change in changes], widths)
    for change, lane in zip(changes, lanes, strict=True):
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
            text=change.label if lane is not None else "•",
            hovertext=change.label,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            yshift=_LANE_PX * (lane if lane is not None else LABEL_LANES),
        )
    used = max((lane for lane in lanes if lane is not None), default=-1) + 1
    if used > 1:  # room above the plot for the stacked rows, below the title
        figure.update_layout(margin={"t": 60 + _LANE_PX * used})
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


def evidence_chart(arms: GateArms, path: DifferencePath) -> go.Figure:
    """Treatment − control since the step began, in points, with its always-valid
    interval (the band), the limit (dashed) and the moment the gate fired (a red line):
    what the gate saw at each look."""
    times = [datetime.fromtimestamp(float(t), tz=UTC) for t in path.at]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=times + times[::-1],
            y=[100 * v for v in path.high] + [100 * v for v in path.low[::-1]],
            fill="toself",
            line={"width": 0},
            fillcolor="rgba(99, 110, 250, 0.2)",
            name="always-valid interval",
            hoverinfo="skip",
        )
    )
    figure.add_trace(
        go.Scatter(x=times, y=[100 * v for v in path.estimate], name="treatment − control")
    )
    if not path.relative:
        figure.add_hline(
            y=100 * path.limit,
            line_dash="dash",
            annotation_text=f"limit {100 * path.limit:+.2f} pt",
            annotation_position="top left",
        )
    if path.fired_at is not None:
        fired = datetime.fromtimestamp(path.fired_at, tz=UTC)
        figure.add_vline(x=fired, line_color="red")
        figure.add_annotation(
            x=fired, y=1, yref="paper", text=f"fired {fired:%H:%M:%S}", showarrow=False
        )
    figure.update_layout(
        title=f"{arms.gate}: treatment − control, look by look",
        yaxis_title="points",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 60},
    )
    return figure


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
