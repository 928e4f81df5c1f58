"""Webhook notifications that could not be delivered (`app.notify`), as a
warning any page can show: which webhook, what about, when, and why. Nothing when every
recent delivery went out; never the webhook's URL, which no row holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import streamlit as st

from app.notify import Delivery, failed_deliveries
from app.runtime import Runtime
from app.text import escape_markdown, format_age

__all__ = ["FAILED_DELIVERIES_SPAN", "failed_deliveries_text", "render_failed_deliveries"]

#: how far back the warning looks
FAILED_DELIVERIES_SPAN = timedelta(hours=24)
_READ = 20
_SHOWN = 5


def failed_deliveries_text(deliveries: Sequence[Delivery], now: datetime) -> str:
    """'2 webhook notifications failed in the last 24 h:' then one line per delivery,
    newest first: '- oncall: rollback of new_checkout in production, 12 min ago — HTTP
    500 after 6 attempts'. '' for none."""
    if not deliveries:
        return ""
    count = f"{len(deliveries)}+" if len(deliveries) >= _READ else str(len(deliveries))
    noun = "notification" if len(deliveries) == 1 else "notifications"
    lines = [f"{count} webhook {noun} failed in the last 24 h:"]
    for d in deliveries[:_SHOWN]:
        event = d.event.removeprefix("manual:") + (" by hand" if ":" in d.event else "")
        age = format_age(max(0.0, (now - d.at).total_seconds()))
        tries = "attempt" if d.attempts == 1 else "attempts"
        lines.append(
            f"- {escape_markdown(d.webhook)}: {escape_markdown(event)} of "
            f"{escape_markdown(d.flag)} in {escape_markdown(d.environment)}, {age} ago — "
            f"{escape_markdown(d.last_error)} after {d.attempts} {tries}"
        )
    if len(deliveries) > _SHOWN:
        more = len(deliveries) - _SHOWN
        lines.append(f"- and {more}{'+' if len(deliveries) >= _READ else ''} more")
    return "\n".join(lines)


def render_failed_deliveries(rt: Runtime, now: datetime | None = None) -> None:
    """A warning listing the webhook deliveries that failed in the last 24 h (after every
    retry); nothing when there are none or the database does not answer."""
    now = now or datetime.now(UTC)
    deliveries = failed_deliveries(rt.engine, limit=_READ, since=now - FAILED_DELIVERIES_SPAN)
    text = failed_deliveries_text(deliveries, now)
    if text:
        st.warning(text, icon="📭")
