"""Webhook deliveries against a real HTTP receiver started by the test (http.server on
127.0.0.1): the bodies received, retries, unreachable receivers, and the
`webhook_deliveries` rows on SQLite and PostgreSQL. The receiver's URL carries a token
in its path, as Slack's do: it must appear in no row, error or log line."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from app.metrics_db.database import open_database
from app.metrics_db.schema import WebhookDeliveryRow
from app.notify import (
    DeliveryStatus,
    Notification,
    Webhook,
    WebhookNotifier,
    failed_deliveries,
    json_body,
)
from app.settings import WebhookKind
from tests.support.webhook_receiver import TOKEN, Receiver

FAST = {"backoff": (0.05, 0.1), "timeout": 2.0}
LINK = "https://rollout.example.com/flag_detail?env=production&flag=new_checkout"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.stop()


@pytest.fixture
def notifiers() -> Iterator[list[WebhookNotifier]]:
    made: list[WebhookNotifier] = []
    yield made
    for notifier in made:
        notifier.close()


@pytest.fixture
def start(receivers: list[Receiver], notifiers: list[WebhookNotifier]):
    """receiver(answers, hold_from) -> a receiver; notifier(webhooks, engine) -> a notifier; both
    stopped after the test."""

    class Start:
        @staticmethod
        def receiver(answers: Sequence[int] = (), *, hold_from: int | None = None) -> Receiver:
            receivers.append(Receiver(answers, hold_from=hold_from))
            return receivers[-1]

        @staticmethod
        def notifier(
            webhooks: Sequence[Webhook], engine: Engine | None, **options: Any
        ) -> WebhookNotifier:
            notifiers.append(WebhookNotifier(webhooks, engine, **(FAST | options)))
            return notifiers[-1]

    return Start


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'metrics.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    made = open_database(url)
    yield made
    made.dispose()


def _name() -> str:
    """A webhook name of this test only (the PostgreSQL database is shared by the session)."""
    return f"hook_{uuid.uuid4().hex[:8]}"


def _rollback(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": "rollback",
        "flag": "new_checkout",
        "environment": "production",
        "actor": "autopilot",
        "from_percentage": 25.0,
        "to_percentage": 5.0,
        "text": "The error rate failed its gate on data: rolled back one step.",
        "gate": {
            "name": "error_rate",
            "passed": False,
            "value": 0.062,
            "threshold": 0.01,
            "detail": "6.2 % of evaluations failed",
        },
        "link": LINK,
        "at": datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC),
    } | changes
    return Notification(**fields)


def _rows(engine: Engine, webhook: str) -> list[WebhookDeliveryRow]:
    query = (
        select(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.webhook == webhook)
        .order_by(WebhookDeliveryRow.id)
    )
    with Session(engine) as session:
        return list(session.scalars(query).all())


def _row_text(row: WebhookDeliveryRow) -> str:
    return " ".join(str(getattr(row, column.key)) for column in WebhookDeliveryRow.__table__.c)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_each_webhook_receives_its_body_and_each_delivery_is_a_row(start, engine) -> None:
    audit, oncall = start.receiver(), start.receiver()
    names = _name(), _name()
    notifier = start.notifier(
        [
            Webhook(names[0], WebhookKind.JSON, audit.url),
            Webhook(names[1], WebhookKind.SLACK, oncall.url),
        ],
        engine,
    )
    note = _rollback()
    notifier.notify(note)
    notifier.notify(_rollback(event="pause", to_percentage=5.0, gate=None, text="Paused."))
    assert notifier.flush(30)

    assert audit.bodies[0] == json_body(note)
    assert audit.bodies[1]["event"] == "pause" and audit.bodies[1]["gate"] is None
    assert [list(body) for body in oncall.bodies] == [["text"], ["text"]]
    assert "error_rate 6.20 % (limit ≤ 1 %)" in oncall.bodies[0]["text"]
    assert "25 % → 5 %" in oncall.bodies[0]["text"] and LINK in oncall.bodies[0]["text"]
    for name in names:
        rows = _rows(engine, name)
        assert [(r.event, r.status, r.attempts, r.last_error) for r in rows] == [
            ("rollback", "delivered", 1, ""),
            ("pause", "delivered", 1, ""),
        ]
        assert (rows[0].flag, rows[0].environment) == ("new_checkout", "production")
        assert rows[0].summary.startswith("25 % → 5 %: The error rate failed")
        assert all(TOKEN not in _row_text(row) for row in rows)


def test_a_500_is_retried_until_a_200(start, engine) -> None:
    receiver = start.receiver([500])
    name = _name()
    notifier = start.notifier([Webhook(name, WebhookKind.JSON, receiver.url)], engine)
    notifier.notify(_rollback())
    assert notifier.flush(30)
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    [row] = _rows(engine, name)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, "")


def test_between_attempts_the_row_says_retrying_and_why(start, sqlite_engine) -> None:
    receiver = start.receiver([503], hold_from=1)  # the second attempt waits there
    name = _name()
    notifier = start.notifier([Webhook(name, WebhookKind.JSON, receiver.url)], sqlite_engine)
    notifier.notify(_rollback())
    assert receiver.wait_for(2)
    [row] = _rows(sqlite_engine, name)
    assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "HTTP 503")
    receiver.release.set()
    assert notifier.flush(30)
    [row] = _rows(sqlite_engine, name)
    assert (row.status, row.attempts) == ("delivered", 2)


def test_notify_returns_before_the_receiver_has_answered(start, sqlite_engine) -> None:
    receiver = start.receiver(hold_from=0)
    name = _name()
    notifier = start.notifier([Webhook(name, WebhookKind.JSON, receiver.url)], sqlite_engine)
    notifier.notify(_rollback())  # the receiver answers nothing until released below
    assert receiver.wait_for(1)
    assert not notifier.flush(0)  # under way while the caller is already free
    [row] = _rows(sqlite_engine, name)
    assert (row.status, row.attempts) == ("pending", 0)
    receiver.release.set()
    assert notifier.flush(30)
    assert [r.status for r in _rows(sqlite_engine, name)] == ["delivered"]


def _assert_failed_in_the_background(
    caplog: pytest.LogCaptureFixture, engine: Engine, name: str, error: str
) -> None:
    [row] = _rows(engine, name)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, error)
    assert TOKEN not in _row_text(row)
    [given_up] = [r for r in caplog.records if "not delivered after" in r.getMessage()]
    assert given_up.threadName == f"webhook-{name}"  # retried off the caller's thread
    assert given_up.threadName != threading.current_thread().name
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_a_closed_port_fails_after_the_retries_without_quoting_the_url(
    start, engine, caplog
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.notify")
    name = _name()
    url = f"http://127.0.0.1:{_closed_port()}/services/T000/{TOKEN}"
    notifier = start.notifier([Webhook(name, WebhookKind.SLACK, url)], engine)
    notifier.notify(_rollback())
    assert notifier.flush(30)
    _assert_failed_in_the_background(caplog, engine, name, "ConnectionError")
    [failed] = failed_deliveries(engine, since=datetime.now(UTC) - timedelta(minutes=5))[:1]
    assert (failed.webhook, failed.status, failed.last_error) == (
        name,
        DeliveryStatus.FAILED,
        "ConnectionError",
    )


def test_a_receiver_that_never_answers_times_out_and_fails(start, sqlite_engine, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="app.notify")
    name = _name()
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/services/T000/{TOKEN}"
        notifier = start.notifier(
            [Webhook(name, WebhookKind.JSON, url)], sqlite_engine, timeout=0.3
        )
        notifier.notify(_rollback())
        assert not notifier.flush(0)  # still trying: the caller did not wait
        assert notifier.flush(30)
    _assert_failed_in_the_background(caplog, sqlite_engine, name, "ReadTimeout")


def test_a_database_error_while_recording_never_stops_the_delivery(start, tmp_path, caplog) -> None:
    receiver = start.receiver()
    no_tables = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated
    notifier = start.notifier([Webhook(_name(), WebhookKind.JSON, receiver.url)], no_tables)
    notifier.notify(_rollback())
    assert notifier.flush(30)
    assert receiver.bodies == [json_body(_rollback())]
    assert any("not recorded (OperationalError)" in r.getMessage() for r in caplog.records)


def test_without_a_database_deliveries_still_go_out(start) -> None:
    receiver = start.receiver()
    notifier = start.notifier([Webhook(_name(), WebhookKind.JSON, receiver.url)], None)
    notifier.notify(_rollback())
    assert notifier.flush(30)
    assert len(receiver.bodies) == 1
    assert failed_deliveries(None) == []


def test_closing_records_what_still_waits_for_a_retry_as_failed(start, sqlite_engine) -> None:
    receiver = start.receiver([500])
    name = _name()
    notifier = start.notifier(
        [Webhook(name, WebhookKind.JSON, receiver.url)], sqlite_engine, backoff=(600,)
    )
    notifier.notify(_rollback())
    assert receiver.wait_for(1)
    assert not notifier.flush(0.2)  # the retry is 10 minutes away
    notifier.close()
    [row] = _rows(sqlite_engine, name)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "not delivered: the notifier stopped first"
    notifier.notify(_rollback())  # after closing: dropped, never raised
    assert len(_rows(sqlite_engine, name)) == 1


def test_failed_deliveries_are_newest_first_and_only_the_failed(start, sqlite_engine) -> None:
    ok, name = start.receiver(), _name()
    notifier = start.notifier([Webhook("fine", WebhookKind.JSON, ok.url)], sqlite_engine)
    notifier.notify(_rollback())
    url = f"http://127.0.0.1:{_closed_port()}/{TOKEN}"
    broken = start.notifier([Webhook(name, WebhookKind.JSON, url)], sqlite_engine, backoff=())
    for flag in ("first", "second", "third"):
        broken.notify(_rollback(flag=flag))
        assert broken.flush(30)
    assert notifier.flush(30)
    failed = failed_deliveries(sqlite_engine, limit=2)
    assert [(d.flag, d.webhook, d.attempts) for d in failed] == [
        ("third", name, 1),
        ("second", name, 1),
    ]
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert failed_deliveries(sqlite_engine, since=later) == []
