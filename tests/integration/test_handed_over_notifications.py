"""A rollback from the terminal never waits for a webhook: its notification is handed
over to the autopilot through the metrics database (or said not sent), and the
autopilot's next tick delivers it. Real parts: `rollout-dashboard` processes, flags in
YAML, SQLite, a receiver that accepts connections and never answers, and a working one.
How long the rollback takes is measured in tests/bench/bench_rollback_webhook.py."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update

from app.metrics_db.schema import WebhookDeliveryRow
from tests.support.cli_process import cli_environment, run_cli
from tests.support.servers import free_port
from tests.support.webhook_receiver import TOKEN, NeverAnswers, Receiver

ME = pwd.getpwuid(os.getuid()).pw_name
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
"""


@pytest.fixture
def hung() -> Iterator[NeverAnswers]:
    receiver = NeverAnswers()
    yield receiver
    receiver.stop()


@pytest.fixture
def working() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def settings_env(state: Path, webhook_url: str, **more: str) -> dict[str, str]:
    return cli_environment(
        state,
        f"sqlite:///{state / 'metrics.db'}",
        ME,
        ROLLOUT_WEBHOOKS="oncall=json",
        ROLLOUT_WEBHOOK_URL_ONCALL=webhook_url,
        ROLLOUT_NOTIFY_MANUAL_ACTIONS="true",
        **more,
    )


def deliveries(state: Path) -> list[WebhookDeliveryRow]:
    engine = create_engine(f"sqlite:///{state / 'metrics.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id))
            return list(rows.all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_kill_hands_its_notification_over_and_the_next_tick_delivers_it(
    tmp_path: Path, hung: NeverAnswers, working: Receiver
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    killed = run_cli(
        settings_env(tmp_path, hung.url),
        *("rollback", "alpha", "--kill", "--reason", "errors spiking", "--actor", ME),
    )
    assert killed.returncode == 0, killed.stderr
    assert "applied (audit " in killed.stdout
    assert hung.connections == 0  # the command never even connected to the receiver

    (row,) = deliveries(tmp_path)  # kept, not lost
    assert (row.status, row.webhook, row.event, row.flag, row.attempts) == (
        "handed_over",
        "oncall",
        "manual:kill",
        "alpha",
        0,
    )
    assert row.notification is not None
    assert (row.notification["actor"], row.notification["from"], row.notification["to"]) == (
        ME,
        25.0,
        0.0,
    )
    assert TOKEN not in json.dumps(row.notification) + row.summary + row.last_error

    # the receiver is fixed: the autopilot's next tick, as leader, delivers it
    ticked = run_cli(settings_env(tmp_path, working.url), "autopilot", "--once")
    assert ticked.returncode == 0, ticked.stderr
    assert working.wait_for(1)
    [body] = working.bodies
    assert body | {"at": "…", "link": "…"} == {
        "event": "manual:kill",
        "flag": "alpha",
        "environment": "production",
        "actor": ME,
        "from": 25.0,
        "to": 0.0,
        "text": f"{ME} killed alpha by hand: errors spiking",
        "gate": None,
        "link": "…",
        "at": "…",
    }
    (row,) = deliveries(tmp_path)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 1, "")

    again = run_cli(settings_env(tmp_path, working.url), "autopilot", "--once")
    assert again.returncode == 0, again.stderr
    assert len(working.bodies) == 1  # delivered once, not again


def test_a_delivery_to_a_webhook_the_autopilot_lacks_is_recorded_failed(
    tmp_path: Path, hung: NeverAnswers
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    killed = run_cli(
        settings_env(tmp_path, hung.url),
        *("rollback", "alpha", "--kill", "--reason", "x", "--actor", ME),
    )
    assert killed.returncode == 0, killed.stderr
    env = settings_env(tmp_path, hung.url)
    del env["ROLLOUT_WEBHOOKS"], env["ROLLOUT_WEBHOOK_URL_ONCALL"]
    env["ROLLOUT_WEBHOOKS"] = "audit=json"
    env["ROLLOUT_WEBHOOK_URL_AUDIT"] = hung.url
    ticked = run_cli(env, "autopilot", "--once")
    assert ticked.returncode == 0, ticked.stderr
    (row,) = deliveries(tmp_path)
    assert (row.status, row.webhook) == ("failed", "oncall")
    assert row.last_error == "not sent: the autopilot has no webhook of this name"
    assert hung.connections == 0


def test_without_the_database_the_kill_says_its_notification_was_not_sent(
    tmp_path: Path, hung: NeverAnswers
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    closed = free_port()
    env = settings_env(
        tmp_path,
        hung.url,
        ROLLOUT_DATABASE_URL=f"postgresql+psycopg://rollout@127.0.0.1:{closed}/rollout",
        ROLLOUT_LOG_FORMAT="json",
    )
    killed = run_cli(env, "rollback", "alpha", "--kill", "--reason", "db down", "--actor", ME)
    assert killed.returncode == 0, killed.stderr  # the flag is killed all the same
    logged = [json.loads(line) for line in killed.stderr.splitlines() if line.startswith("{")]
    (said,) = [line for line in logged if "not sent" in line["event"]]
    assert said["level"] == "warning"
    assert said["event"].startswith("manual:kill of alpha not sent to oncall")
    assert (said["flag"], said["environment"], said["actor"]) == ("alpha", "production", ME)
    assert hung.connections == 0
    assert TOKEN not in killed.stdout + killed.stderr


def test_a_delivery_its_claimer_abandoned_is_taken_again_one_under_way_is_not(
    tmp_path: Path, hung: NeverAnswers, working: Receiver
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    for to, reason in (("10", "first"), ("5", "second")):
        done = run_cli(
            settings_env(tmp_path, hung.url),
            *("rollback", "alpha", "--to", to, "--reason", reason, "--actor", ME),
        )
        assert done.returncode == 0, done.stderr
    abandoned, under_way = deliveries(tmp_path)
    engine = create_engine(f"sqlite:///{tmp_path / 'metrics.db'}")
    now = datetime.now(UTC)
    with engine.begin() as connection:  # an autopilot claimed both; one died an hour ago
        for row_id, at in ((abandoned.id, now - timedelta(hours=1)), (under_way.id, now)):
            connection.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == row_id)
                .values(status="pending", updated_at=at)
            )
    engine.dispose()
    ticked = run_cli(settings_env(tmp_path, working.url), "autopilot", "--once")
    assert ticked.returncode == 0, ticked.stderr
    assert working.wait_for(1)
    assert [body["text"] for body in working.bodies] == [f"{ME} rolled back alpha by hand: first"]
    assert [(r.id, r.status) for r in deliveries(tmp_path)] == [
        (abandoned.id, "delivered"),
        (under_way.id, "pending"),  # its claimer may still be at it
    ]
