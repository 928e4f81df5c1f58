"""The Phases page's charts (Plotly figures, no Streamlit): the burn-up of every phase
and the planned-vs-actual timeline, each exportable as PNG from Plotly's toolbar."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from app.services.phases import BEFORE_HISTORY, PhasesView, burn_up_frame, timeline_frame

__all__ = ["TIMELINE_COLOURS", "burn_up_chart", "export_config", "timeline_chart"]

#: planned weeks pale, finished phases green, a phase still open orange
TIMELINE_COLOURS = {
    "planned": "#9ecae1",
    "actual": "#31a354",
    "actual (open)": "#fd8d3c",
    BEFORE_HISTORY: "#fdae6b",
}


def export_config(name: str) -> dict[str, object]:
    """Plotly's own toolbar exports the chart as PNG under a useful file name."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2},
    }


def burn_up_chart(view: PhasesView) -> go.Figure:
    """A step line per phase: its progress (0..105 % axis) after each applied change."""
    burn = px.line(
        burn_up_frame(view),
        x="at",
        y="Progress",
        color="Phase",
        line_shape="hv",
        markers=True,
        hover_data=["At 100 %"],
        title="Burn-up: progress of each phase over time",
        labels={"at": "", "Progress": "progress (%)"},
    )
    burn.update_layout(yaxis_range=[0, 105])
    return burn


def timeline_chart(view: PhasesView) -> go.Figure:
    """Planned week and actual span of each phase side by side, first phase on top, with
    a dotted line at the moment the view was made."""
    timeline = px.timeline(
        timeline_frame(view),
        x_start="Start",
        x_end="Finish",
        y="Phase",
        color="Kind",
        hover_data=["Schedule"],
        title="Planned week vs actual",
        color_discrete_map=TIMELINE_COLOURS,
    )
    timeline.update_yaxes(autorange="reversed", title="")
    timeline.update_layout(barmode="group")
    timeline.add_vline(x=view.generated_at.timestamp() * 1000, line_dash="dot", line_color="grey")
    return timeline
