"""Shared UI: pure formatting (format, overview_table) and Streamlit widgets (widgets)."""

from app.ui.format import (
    HEALTH_BADGES,
    format_age,
    format_change,
    format_error_rate,
    format_latency,
    format_rate,
    format_split,
)
from app.ui.overview_table import overview_display_frame

__all__ = [
    "HEALTH_BADGES",
    "format_age",
    "format_change",
    "format_error_rate",
    "format_latency",
    "format_rate",
    "format_split",
    "overview_display_frame",
]
