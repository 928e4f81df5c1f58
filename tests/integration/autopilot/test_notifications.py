"""The autopilot's actions and pauses reach the webhooks, and a receiver that holds its
answer never holds the rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.audit import AuditLog
from app.autopilot.controller import Controller, ControllerConfig
from app.autopilot.decide import Move
from app.autopilot.model import RolloutPlan
from app.autopilot.store import AutopilotEvent
from app.flags.yaml_backend import YamlFlagBackend
from app.notify import Webhook, WebhookNotifier, autopilot_notification
from app.settings import Settings, WebhookKind
from queries.sql import SqlMetrics
from tests.integration.autopilot.test_controller import (  # the same real parts
    ENV,
    FLAG,
    a_plan,
    audit,
    backend,
    engine,
    evaluations,
)
from tests.support.webhook_receiver import Receiver

__all__ = ["audit", "backend", "engine"]  # fixtures, imported to be used here


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    held, slack = Receiver(hold_from=0), Receiver()
    yield held, slack
    held.stop()
    slack.stop()


def test_a_rollback_is_applied_while_the_webhook_still_holds_its_answer(
    engine: Engine,
    backend: YamlFlagBackend,
    audit: AuditLog,
    receivers: tuple[Receiver, Receiver],
    tmp_path: Path,
) -> None:
    held, slack = receivers
    notifier = WebhookNotifier(
        [
            Webhook("audit", WebhookKind.JSON, held.url),
            Webhook("oncall", WebhookKind.SLACK, slack.url),
        ],
        engine,
        backoff=(0.05,),
    )
    settings = Settings(public_url="https://rollout.example.com", state_dir=tmp_path)

    def tell(event: AutopilotEvent, plan: RolloutPlan) -> None:
        notifier.notify(autopilot_notification(event, plan, settings))

    controller = Controller(
        engine=engine,
        backend=backend,
        audit=audit,
        metrics=lambda: [SqlMetrics(engine)],
        config=ControllerConfig(),
        holder="one",
        on_event=tell,
    )
    a_plan(engine, backend, audit, steps=(5.0, 10.0, 25.0))
    evaluations(engine, 0.10, errors_on=600)
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ROLLBACK
    assert backend.load(ENV).flag(FLAG).percentage == 5.0
    assert held.wait_for(1)  # the request came in and still waits for its answer
    held.release.set()
    assert slack.wait_for(1)
    assert notifier.flush(10)
    body = held.bodies[0]
    assert (body["event"], body["flag"], body["environment"]) == ("rollback", FLAG, ENV)
    assert (body["from"], body["to"], body["actor"]) == (10.0, 5.0, "autopilot")
    assert body["gate"]["name"] == "error_rate"
    assert body["gate"]["threshold"] == 0.01
    assert body["link"] == (f"https://rollout.example.com/flag_detail?env={ENV}&flag={FLAG}")
    text = slack.bodies[0]["text"]
    assert FLAG in text and "10 % → 5 %" in text and "error_rate 3.00 % (limit ≤ 1 %)" in text
    notifier.close()
