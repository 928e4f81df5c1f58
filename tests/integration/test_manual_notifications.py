"""A person's applied rollback notifies the webhooks when ROLLOUT_NOTIFY_MANUAL_ACTIONS
is on, and a webhook that does not answer never delays it. Real parts: the bundled flags
in YAML, SQLite, an HTTP receiver on 127.0.0.1 (tests/integration/test_webhooks.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.flags.loader import BUNDLED_CONFIG
from app.notify import NullNotifier, WebhookNotifier
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.support.bundled import copy_bundled_config
from tests.support.webhook_receiver import TOKEN, Receiver

CAROL = Identity("carol", Role.OPERATOR, "test")
LINK = "https://rollout.example.com/flag_detail?env=production&flag=ab_testing"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(hold_from=0)
    yield made
    made.stop()


@pytest.fixture
def runtime_for(tmp_path: Path, receiver: Receiver, no_rollout_environment):
    """runtime_for(notify_manual_actions) -> a runtime on a copy of the bundled flags whose
    one webhook (json) is the receiver; its notifier is closed after the test."""
    (tmp_path / "flags").mkdir()
    flags_file = copy_bundled_config(tmp_path / "flags")
    made: list[Runtime] = []

    def make(notify_manual_actions: bool) -> Runtime:
        settings = load_settings(
            state_dir=tmp_path,
            flags_file=flags_file,
            webhooks={"audit": "json"},
            webhook_urls={"audit": receiver.url},
            public_url="https://rollout.example.com/",
            notify_manual_actions=notify_manual_actions,
        )
        made.append(open_runtime(settings))
        return made[-1]

    yield make
    for runtime in made:
        if isinstance(runtime.notifier, WebhookNotifier):
            runtime.notifier.close()


def _rollback(runtime: Runtime, key: str) -> None:
    request = ActionRequest(
        Action.ROLLBACK,
        "production",
        "errors spiking",
        CAROL,
        flag="ab_testing",
        idempotency_key=key,
    )
    result = runtime.execute(request)
    assert result.applied, result.error


def test_an_applied_rollback_notifies_without_waiting_for_the_webhook(
    runtime_for, receiver: Receiver
) -> None:
    runtime = runtime_for(notify_manual_actions=True)
    _rollback(runtime, "rollback-1")  # returns while the receiver holds the request
    notifier = runtime.notifier
    assert isinstance(notifier, WebhookNotifier)
    assert receiver.wait_for(1)
    assert not notifier.flush(0)  # the rollback was done before the webhook answered
    receiver.release.set()
    assert notifier.flush(30)
    [body] = receiver.bodies
    assert body | {"at": "…"} == {
        "event": "manual:rollback",
        "flag": "ab_testing",
        "environment": "production",
        "actor": "carol",
        "from": 25.0,
        "to": 10.0,
        "text": "carol rolled back ab_testing by hand: errors spiking",
        "gate": None,
        "link": LINK,
        "at": "…",
    }
    _rollback(runtime, "rollback-1")  # the same click again: replayed, not notified again
    assert notifier.flush(30) and len(receiver.bodies) == 1
    assert TOKEN in receiver.url  # the URL the rows and logs must never show


def test_without_the_setting_a_manual_rollback_notifies_nobody(
    runtime_for, receiver: Receiver
) -> None:
    runtime = runtime_for(notify_manual_actions=False)
    _rollback(runtime, "rollback-2")
    receiver.release.set()
    notifier = runtime.notifier
    assert isinstance(notifier, WebhookNotifier) and notifier.flush(30)
    assert receiver.bodies == []


def test_no_webhooks_configured_is_a_null_notifier(tmp_path: Path, no_rollout_environment) -> None:
    settings = load_settings(state_dir=tmp_path, flags_file=BUNDLED_CONFIG)
    assert isinstance(open_runtime(settings).notifier, NullNotifier)


def test_an_emergency_rollback_notifies_once_per_flag_switched_off(
    runtime_for, receiver: Receiver
) -> None:
    runtime = runtime_for(notify_manual_actions=True)
    receiver.release.set()
    request = ActionRequest(Action.EMERGENCY, "production", "incident 42", CAROL)
    result = runtime.execute(request)
    assert result.applied and result.plan is not None
    notifier = runtime.notifier
    assert isinstance(notifier, WebhookNotifier) and notifier.flush(30)
    switched_off = {t.flag: t.from_percentage for t in result.plan.transitions}
    assert len(switched_off) > 1
    assert {body["flag"]: body["from"] for body in receiver.bodies} == switched_off
    assert {(body["event"], body["to"]) for body in receiver.bodies} == {
        ("manual:emergency_rollback", 0.0)
    }
