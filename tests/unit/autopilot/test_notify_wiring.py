"""From the settings to a notifier, and the flag links a notification carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.notify import NullNotifier, Webhook, WebhookNotifier, link_to_flag, open_notifier
from app.settings import WebhookKind, load_settings
from app.text import flag_detail_url

SECRET_URL = "https://hooks.slack.example/services/T000/B000/sEcReTtOkEn"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment):
    monkeypatch.chdir(tmp_path)


def test_the_link_is_the_flag_detail_page_under_the_public_url() -> None:
    settings = load_settings(public_url="https://ops.example.com/rollout/")
    link = link_to_flag(settings, "prod eu", "a&b")
    assert link == "https://ops.example.com/rollout" + flag_detail_url("prod eu", "a&b")
    assert link == "https://ops.example.com/rollout/flag_detail?env=prod+eu&flag=a%26b"


def test_no_link_without_a_public_url() -> None:
    assert link_to_flag(load_settings(), "production", "ab_testing") == ""


def test_no_webhooks_no_notifier_work() -> None:
    notifier = open_notifier(load_settings(), None)
    assert isinstance(notifier, NullNotifier) and notifier.flush(0)


def test_the_configured_webhooks_with_their_secret_urls() -> None:
    settings = load_settings(webhooks="oncall=slack", webhook_urls={"OnCall": f" {SECRET_URL} "})
    notifier = open_notifier(settings, None)
    assert isinstance(notifier, WebhookNotifier)
    try:
        assert notifier._webhooks == (Webhook("oncall", WebhookKind.SLACK, SECRET_URL),)
        assert "sEcReTtOkEn" not in repr(notifier._webhooks)
    finally:
        notifier.close()
