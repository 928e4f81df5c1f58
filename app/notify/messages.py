"""What a notification says: the `Notification` value of an autopilot action or pause,
or of a person's action, and the body each kind of webhook is sent (pure; the transport
is `app.notify.webhooks`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.autopilot.model import AUTOPILOT_ACTOR, RolloutPlan
from app.autopilot.store import AutopilotEvent
from app.rollout.guards import GuardResult
from app.settings import Settings, WebhookKind
from app.text import flag_detail_url, format_guard_values

if TYPE_CHECKING:
    from app.rollout.action_model import ActionResult

__all__ = [
    "Notification",
    "autopilot_notification",
    "delivery_summary",
    "gate_in_words",
    "json_body",
    "link_to_flag",
    "manual_notifications",
    "notification_from_json",
    "slack_body",
    "webhook_body",
]

#: a person's actions that notify when ROLLOUT_NOTIFY_MANUAL_ACTIONS is on
_MANUAL_ACTIONS = ("advance", "rollback", "kill", "emergency_rollback")
_SUMMARY_CHARS = 500


@dataclass(frozen=True)
class Notification:
    """Something to tell people: an autopilot action or pause, or a person's action."""

    event: str  # "advance", "rollback", "kill", "pause", or "manual:<action>"
    flag: str
    environment: str
    actor: str
    from_percentage: float | None
    to_percentage: float | None
    text: str  # one sentence, what happened and why
    gate: Mapping[str, Any] | None  # the failed gate as GuardResult.as_json()
    link: str  # the flag's page ('' when no ROLLOUT_PUBLIC_URL is set)
    at: datetime


def json_body(notification: Notification) -> dict[str, Any]:
    """The generic document: event, flag, environment, actor, from, to, text, gate (or
    null), link, at (ISO 8601)."""
    n = notification
    return {
        "event": n.event,
        "flag": n.flag,
        "environment": n.environment,
        "actor": n.actor,
        "from": n.from_percentage,
        "to": n.to_percentage,
        "text": n.text,
        "gate": None if n.gate is None else dict(n.gate),
        "link": n.link,
        "at": n.at.isoformat(),
    }


def notification_from_json(document: Mapping[str, Any]) -> Notification:
    """The `Notification` whose `json_body` is `document` (a delivery handed over through
    the database); KeyError or ValueError when it is not one."""
    d = document
    return Notification(
        event=str(d["event"]),
        flag=str(d["flag"]),
        environment=str(d["environment"]),
        actor=str(d["actor"]),
        from_percentage=None if d["from"] is None else float(d["from"]),
        to_percentage=None if d["to"] is None else float(d["to"]),
        text=str(d["text"]),
        gate=None if d["gate"] is None else dict(d["gate"]),
        link=str(d["link"]),
        at=datetime.fromisoformat(str(d["at"])),
    )


def slack_body(notification: Notification) -> dict[str, Any]:
    """Slack's `{"text": ...}`: who did what to which flag where, from → to; then why,
    the failed gate in words and the link."""
    n = notification
    headline = f"{_slack(n.actor)} {_verb(n.event)} {_slack(n.flag)} in {_slack(n.environment)}"
    if n.event == "pause":
        at = n.to_percentage if n.to_percentage is not None else n.from_percentage
        headline += "" if at is None else f" at {at:g} %"
    elif n.from_percentage is not None or n.to_percentage is not None:
        headline += f": {_percent(n.from_percentage)} → {_percent(n.to_percentage)}"
    details = [_slack(n.text)] if n.text else []
    if n.gate is not None:
        details.append(f"failed gate: {_slack(gate_in_words(n.gate))}")
    if n.link:
        details.append(n.link)
    return {"text": "\n".join([headline, " — ".join(details)] if details else [headline])}


def webhook_body(kind: WebhookKind, notification: Notification) -> dict[str, Any]:
    return slack_body(notification) if kind is WebhookKind.SLACK else json_body(notification)


def gate_in_words(gate: Mapping[str, Any]) -> str:
    """A failed gate with its value against its threshold, in the guard report's own
    units (`format_guard_values`): 'error_rate 6.20 % (limit ≤ 1 %)', 'soak_time 12 min
    (limit ≥ 30 min)', 'canary fail (limit pass)'; a dash when it was not measured."""
    result = GuardResult.from_json(gate)
    value, threshold = format_guard_values(result)
    return f"{result.label} {value} (limit {threshold})"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:g} %"


_VERBS = {
    "advance": "advanced",
    "rollback": "rolled back",
    "kill": "killed",
    "pause": "paused",
    "emergency_rollback": "switched off (emergency rollback)",
    "restore": "restored",
}


def _verb(event: str) -> str:
    action = event.removeprefix("manual:")
    return _VERBS.get(action, action)


def _slack(text: str) -> str:
    """Slack reads `<…>` as links and mentions (`<!channel>`) and `&…;` as entities:
    escape them in what is not ours (a `>` without its `<` is plain text, kept readable
    in 'error_rate 6.2 % > 1 %')."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def delivery_summary(notification: Notification) -> str:
    """What a delivery row says about its notification (no link, no URL)."""
    n = notification
    change = f"{_percent(n.from_percentage)} → {_percent(n.to_percentage)}"
    return f"{change}: {n.text}"[:_SUMMARY_CHARS]


def link_to_flag(settings: Settings, environment: str, flag: str) -> str:
    """The Flag detail page of `flag` under ROLLOUT_PUBLIC_URL ('' when it is not set):
    the overview's link (`app.text.flag_detail_url`) under that address."""
    if settings.public_url is None:
        return ""
    return f"{settings.public_url}{flag_detail_url(environment, flag)}"


def autopilot_notification(
    event: AutopilotEvent, plan: RolloutPlan, settings: Settings
) -> Notification:
    """What the webhooks hear of an autopilot action or pause."""
    moved = event.kind != "pause"
    return Notification(
        event=event.kind,
        flag=event.flag,
        environment=event.environment,
        actor=AUTOPILOT_ACTOR,
        from_percentage=event.from_percentage,
        to_percentage=event.to_percentage if moved else None,
        text=event.text if moved or plan.status_reason == event.text else plan.status_reason,
        gate=event.gate,
        link=link_to_flag(settings, event.environment, event.flag),
        at=event.at,
    )


def manual_notifications(
    result: ActionResult, settings: Settings, at: datetime | None = None
) -> list[Notification]:
    """One notification per flag a person's action changed (advance, rollback, kill,
    emergency rollback): none for a refusal, a dry run, a replay of an earlier click, or
    the autopilot's own changes (it notifies them itself)."""
    plan = result.plan
    if plan is None or result.replayed or plan.request.dry_run:
        return []
    request = plan.request
    action, actor = str(request.action), request.identity.name
    if action not in _MANUAL_ACTIONS or actor == AUTOPILOT_ACTOR:
        return []
    if result.per_flag is not None:  # written flag by flag: only those that were
        applied = {flag for flag, said in result.per_flag.items() if said.applied}
        changed = [t for t in plan.transitions if t.flag in applied]
    else:
        changed = list(plan.transitions) if result.applied else []
    at = at or datetime.now(UTC)
    return [
        Notification(
            event=f"manual:{action}",
            flag=t.flag,
            environment=request.environment,
            actor=actor,
            from_percentage=t.from_percentage,
            to_percentage=t.to_percentage,
            text=f"{actor} {_verb(action)} {t.flag} by hand: {request.reason}",
            gate=None,
            link=link_to_flag(settings, request.environment, t.flag),
            at=at,
        )
        for t in changed
    ]
