"""What a webhook receives: the generic JSON document and Slack's one or two lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.notify import Notification, gate_in_words, json_body, slack_body, webhook_body
from app.settings import WebhookKind

LINK = "https://rollout.example.com/flag_detail?env=production&flag=new_checkout"
AT = datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)
ERROR_RATE_GATE = {
    "name": "error_rate",
    "passed": False,
    "value": 0.062,
    "threshold": 0.01,
    "detail": "6.2 % of evaluations failed",
}


def _rollback(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": "rollback",
        "flag": "new_checkout",
        "environment": "production",
        "actor": "autopilot",
        "from_percentage": 25.0,
        "to_percentage": 5.0,
        "text": "The error rate failed its gate on data: rolled back one step.",
        "gate": ERROR_RATE_GATE,
        "link": LINK,
        "at": AT,
    } | changes
    return Notification(**fields)


def test_the_generic_body_holds_every_field() -> None:
    body = json_body(_rollback())
    assert body == {
        "event": "rollback",
        "flag": "new_checkout",
        "environment": "production",
        "actor": "autopilot",
        "from": 25.0,
        "to": 5.0,
        "text": "The error rate failed its gate on data: rolled back one step.",
        "gate": ERROR_RATE_GATE,
        "link": LINK,
        "at": "2026-12-02T03:04:05+00:00",
    }
    assert json.loads(json.dumps(body)) == body  # sendable as is


def test_the_generic_body_of_a_pause_without_a_gate() -> None:
    body = json_body(_rollback(event="pause", to_percentage=None, gate=None, link=""))
    assert body["gate"] is None and body["to"] is None and body["link"] == ""


def test_the_slack_text_says_flag_environment_change_gate_and_link() -> None:
    body = slack_body(_rollback())
    assert list(body) == ["text"]
    text = body["text"]
    assert "new_checkout" in text and "production" in text
    assert "25 % → 5 %" in text
    assert "error_rate 6.20 % (limit ≤ 1 %)" in text
    assert LINK in text
    assert "rolled back" in text
    assert 1 <= len(text.splitlines()) <= 2


def test_the_slack_text_of_an_advance_has_no_gate() -> None:
    text = slack_body(
        _rollback(event="advance", to_percentage=50.0, gate=None, text="Every gate passed.")
    )["text"]
    assert text.splitlines()[0] == "autopilot advanced new_checkout in production: 25 % → 50 %"
    assert "gate" not in text.splitlines()[1].lower().replace("every gate passed", "")


def test_a_manual_action_names_the_person() -> None:
    text = slack_body(_rollback(event="manual:kill", actor="alice", to_percentage=0.0, gate=None))[
        "text"
    ]
    assert text.splitlines()[0] == "alice killed new_checkout in production: 25 % → 0 %"


def test_a_pause_says_where_the_flag_stays() -> None:
    text = slack_body(_rollback(event="pause", to_percentage=25.0))["text"]
    assert text.splitlines()[0] == "autopilot paused new_checkout in production at 25 %"


def test_slack_control_sequences_in_the_text_are_escaped() -> None:
    text = slack_body(_rollback(text="<!channel> a & b", flag="a<b>"))["text"]
    assert "<!channel>" not in text and "&lt;!channel> a &amp; b" in text
    assert "a&lt;b>" in text
    assert LINK in text  # the link itself stays clickable


def test_the_kind_picks_the_body() -> None:
    note = _rollback()
    assert webhook_body(WebhookKind.JSON, note) == json_body(note)
    assert webhook_body(WebhookKind.SLACK, note) == slack_body(note)


@pytest.mark.parametrize(
    ("gate", "words"),
    [
        (ERROR_RATE_GATE, "error_rate 6.20 % (limit ≤ 1 %)"),
        (
            {"name": "error_rate", "value": None, "threshold": 0.01},
            "error_rate – (limit ≤ 1 %)",
        ),
        (
            {"name": "soak_time", "value": 720.0, "threshold": 1800.0},
            "soak_time 12 min (limit ≥ 30 min)",
        ),
        (
            {"name": "data_fresh", "value": 400.0, "threshold": 120},
            "data_fresh 6 min (limit ≤ 2 min)",
        ),
        ({"name": "exposure", "value": 0.2, "threshold": 0.25}, "exposure 20.00 % (limit 25 %)"),
        (
            {"name": "propagation", "value": "3/4", "threshold": "v12"},
            "propagation 3 of 4 instances (limit config v12)",
        ),
        ({"name": "canary", "value": "fail", "threshold": "pass"}, "canary fail (limit pass)"),
        (
            {"name": "dependencies", "value": 1, "threshold": 0.99, "of": 2},
            "dependencies 1 of 2 dependencies (limit success ≥ 99 %)",
        ),
    ],
)
def test_a_gate_in_words(gate: dict[str, Any], words: str) -> None:
    assert gate_in_words(gate) == words
