"""How numbers and states read on screen (pure, shared by every page and the CLI)."""

from __future__ import annotations

from datetime import datetime

from app.analysis.health import Health

__all__ = [
    "HEALTH_BADGES",
    "SOURCE_LABELS",
    "escape_markdown",
    "format_age",
    "format_change",
    "format_error_rate",
    "format_latency",
    "format_rate",
    "format_split",
    "source_label",
]

HEALTH_BADGES: dict[Health, str] = {
    Health.UNHEALTHY: "🔴 unhealthy",
    Health.DEGRADED: "🟠 degraded",
    Health.HEALTHY: "🟢 healthy",
    Health.NO_DATA: "⚪ no data",
}

#: how each metrics source is named on screen
SOURCE_LABELS: dict[str, str] = {
    "prometheus": "Prometheus (live)",
    "sql": "metrics database roll-ups",
}


def source_label(source: str | None) -> str:
    """'prometheus' → 'Prometheus (live)'; an unknown or missing source → 'no source'."""
    return SOURCE_LABELS.get(source or "", "no source")


_MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()<>#+-.!|~$:=\"'")


def escape_markdown(text: str) -> str:
    """`text` as Streamlit's markdown shows it literally: every character markdown, HTML,
    LaTeX or a colour directive could read is backslash-escaped; line breaks become spaces."""
    flat = " ".join(text.splitlines())
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIALS else c for c in flat)


def format_rate(per_second: float) -> str:
    """0.6667 → '0.67/s'; large rates lose decimals: 1234.5 → '1,234/s'."""
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.2f}/s"


def format_error_rate(ratio: float | None) -> str:
    return "–" if ratio is None else f"{100 * ratio:.2f} %"


def format_latency(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{1000 * seconds:.2f} ms"
    return f"{seconds:.2f} s"


def format_split(shares: dict[str, float]) -> str:
    """{'on': 0.667, 'off': 0.333} → 'on 67% · off 33%' (largest first)."""
    ordered = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
    return " · ".join(f"{variant} {_percent(share)}" for variant, share in ordered) or "–"


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def format_change(at: datetime, actor: str, before: float, after: float, now: datetime) -> str:
    """'12 min ago · alice · 25 → 50 %'."""
    age = format_age((now - at).total_seconds())
    return f"{age} ago · {actor} · {before:g} → {after:g} %"
