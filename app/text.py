"""How numbers and states read on screen and in messages (pure text, shared by the pages,
the page services, the autopilot, the notifications and the CLI)."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode

from app.analysis.health import Health
from app.rollout.guards import GuardName, GuardResult

__all__ = [
    "HEALTH_BADGES",
    "SOURCE_LABELS",
    "code_span",
    "escape_markdown",
    "flag_detail_url",
    "format_age",
    "format_change",
    "format_duration",
    "format_error_rate",
    "format_guard_values",
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


def flag_detail_url(environment: str, flag: str) -> str:
    """The Flag detail page of `flag` in `environment`: '/flag_detail?env=…&flag=…'
    (the flag last, so the overview's `FLAG_LINK_TEXT` shows its key)."""
    return "/flag_detail?" + urlencode({"env": environment, "flag": flag})


_MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()<>#+-.!|~$:=\"'")


def code_span(text: str) -> str:
    """`text` as inline code: shown literally (markdown would turn an e-mail into a link)."""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if len(fence) > 1 else f"`{text}`"


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


def format_duration(seconds: float) -> str:
    """Whole units, rounded down: 59 s → '59 s', 60 → '1 min', 3599 → '59 min',
    3600 → '1 h', 5400 → '1 h 30 min'."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"


def _percent_of(share: float, digits: int) -> str:
    return f"{100 * share:.{digits}f} %" if digits else f"{100 * share:g} %"


def format_guard_values(guard: GuardResult) -> tuple[str, str]:
    """A guard's (value, threshold) with units, one format per kind: percent as
    percent ('0.30 %', '≤ 1 %'), durations as minutes ('12 min', '≥ 15 min'), counts
    of a whole ('0 of 0 dependencies', '3 of 4 instances'); a dash when unmeasured."""
    value, threshold = guard.value, guard.threshold
    if guard.name == GuardName.DATA_FRESH and isinstance(threshold, float | int):
        shown = "–" if not isinstance(value, float | int) else format_duration(value)
        return shown, f"≤ {format_duration(threshold)}"
    if guard.name == GuardName.SOAK_TIME and isinstance(threshold, float | int):
        shown = "–" if not isinstance(value, float | int) else format_duration(value)
        return shown, f"≥ {format_duration(threshold)}"
    shares = (GuardName.ERROR_RATE, GuardName.EXPOSURE)
    if guard.name in shares and isinstance(threshold, float | int):
        shown = "–" if not isinstance(value, float | int) else _percent_of(value, 2)
        limit = _percent_of(threshold, 0)
        return shown, f"≤ {limit}" if guard.name == GuardName.ERROR_RATE else limit
    if guard.name == GuardName.DEPENDENCIES and isinstance(threshold, float | int):
        total = "?" if guard.of is None else str(guard.of)
        noun = "dependency" if guard.of == 1 else "dependencies"
        return f"{value} of {total} {noun}", f"success ≥ {_percent_of(threshold, 0)}"
    if guard.name == GuardName.PROPAGATION:
        if isinstance(value, str) and "/" in value:
            loaded, total = value.split("/", 1)
            return f"{loaded} of {total} instances", f"config {threshold}"
        return "–" if value is None else f"{value} instances", f"config {threshold}"
    return _shown(value), _shown(threshold)


def _shown(value: float | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
