"""Webhook notifications that could not be delivered (`app.notify`), as a
warning any page can show: which webhook, what about, when, and why. Nothing when every
recent delivery went out; never the webhook's URL, which no row holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import streamlit as st

from app.audit import AuditEntry, Outcome
from app.autopilot.model import AUTOPILOT_ACTOR
from app.notify import Delivery, DeliveryStatus, deliveries_of, failed_deliveries
from app.runtime import Runtime
from app.text import escape_markdown, format_age

__all__ = [
    "FAILED_DELIVERIES_SPAN",
    "failed_deliveries_text",
    "notification_lines",
    "record_notifications",
    "render_failed_deliveries",
]

#: how long after its audit record an action's notifications are looked for
_QUEUED_WITHIN = timedelta(minutes=2)

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


def notification_lines(webhooks: Sequence[str], deliveries: Sequence[Delivery]) -> list[str]:
    """Per configured webhook, what became of the action's notification: '- oncall:
    delivered', '- audit: failed after 6 attempts — HTTP 500', '- oncall: retrying (2
    attempts so far — HTTP 503)', '- oncall: queued, not sent yet'."""
    newest = {d.webhook: d for d in deliveries}
    lines = []
    for name in webhooks:
        d = newest.get(name)
        tries = "" if d is None else f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
        if d is None or d.status is DeliveryStatus.PENDING:
            said = "queued, not sent yet"
        elif d.status is DeliveryStatus.DELIVERED:
            said = f"delivered ({tries})"
        elif d.status is DeliveryStatus.RETRYING:
            said = f"retrying ({tries} so far — {escape_markdown(d.last_error)})"
        else:
            said = f"failed after {tries} — {escape_markdown(d.last_error)}"
        lines.append(f"- {escape_markdown(name)}: {said}")
    return lines


def record_notifications(rt: Runtime, entry: AuditEntry) -> None:
    """The notifications an applied action sent and their delivery, under its audit
    record; says why there are none (no webhook, manual actions not notified)."""
    if entry.outcome is not Outcome.APPLIED:
        return
    webhooks = list(rt.settings.webhooks)
    if not webhooks:
        st.caption("Notifications: none sent — no webhook is configured (`ROLLOUT_WEBHOOKS`).")
        return
    by_autopilot = entry.actor == AUTOPILOT_ACTOR
    if not by_autopilot and not rt.settings.notify_manual_actions:
        st.caption(
            "Notifications: none sent — a person's actions are not notified "
            "(`ROLLOUT_NOTIFY_MANUAL_ACTIONS` is off)."
        )
        return
    event = str(entry.action) if by_autopilot else f"manual:{entry.action}"
    found = deliveries_of(
        rt.engine, entry.environment, entry.flag, event, entry.at, entry.at + _QUEUED_WITHIN
    )
    st.markdown("**Notifications sent**\n" + "\n".join(notification_lines(webhooks, found)))
