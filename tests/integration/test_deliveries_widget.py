"""The failed-deliveries warning in Streamlit's AppTest, on a SQLite database holding
known `webhook_deliveries` rows: failed ones of the last day are listed, newest first;
delivered, retrying and old ones are not; no rows, no warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from app.flags.loader import BUNDLED_CONFIG
from app.metrics_db.database import open_database
from app.metrics_db.schema import WebhookDeliveryRow


def _page() -> None:
    import streamlit as st

    from app.runtime import open_runtime
    from app.settings import load_settings
    from app.ui.deliveries import render_failed_deliveries

    st.title("Some page")
    render_failed_deliveries(open_runtime(load_settings()))


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_FLAGS_FILE", str(BUNDLED_CONFIG))
    return tmp_path


def _deliveries(state_dir: Path, *rows: tuple[str, str, str, str, int, str, timedelta]) -> None:
    engine = open_database(f"sqlite:///{(state_dir / 'metrics.db').resolve()}")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for webhook, event, flag, status, attempts, error, ago in rows:
            connection.execute(
                insert(WebhookDeliveryRow).values(
                    at=now - ago,
                    webhook=webhook,
                    event=event,
                    flag=flag,
                    environment="production",
                    summary="25 % → 5 %: rolled back",
                    status=status,
                    attempts=attempts,
                    last_error=error,
                    updated_at=now - ago,
                )
            )
    engine.dispose()


def _run() -> AppTest:
    at = AppTest.from_function(_page, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def test_failed_deliveries_of_the_last_day_are_a_warning(state_dir: Path) -> None:
    _deliveries(
        state_dir,
        ("oncall", "rollback", "new_checkout", "failed", 6, "HTTP 500", timedelta(minutes=12)),
        ("audit", "manual:kill", "ab_testing", "failed", 6, "ConnectionError", timedelta(hours=2)),
        ("oncall", "advance", "fine_flag", "delivered", 1, "", timedelta(minutes=1)),
        ("oncall", "pause", "retrying_flag", "retrying", 2, "ReadTimeout", timedelta(minutes=1)),
        ("oncall", "rollback", "old_flag", "failed", 6, "HTTP 404", timedelta(days=2)),
    )
    at = _run()
    [warning] = at.warning
    assert warning.value.splitlines() == [
        "2 webhook notifications failed in the last 24 h:",
        "- oncall: rollback of new\\_checkout in production, 12 min ago — HTTP 500 after "
        "6 attempts",
        "- audit: kill by hand of ab\\_testing in production, 2 h ago — ConnectionError after "
        "6 attempts",
    ]


def test_no_failed_delivery_no_warning(state_dir: Path) -> None:
    _deliveries(
        state_dir, ("oncall", "advance", "fine_flag", "delivered", 1, "", timedelta(minutes=1))
    )
    at = _run()
    assert at.title[0].value == "Some page"
    assert len(at.warning) == 0


def test_no_database_no_warning(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    at = _run()
    assert len(at.warning) == 0 and not at.exception


def test_the_overview_says_a_notification_did_not_get_out(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=slack")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_ONCALL", "https://hooks.example.com/T000/secret")
    _deliveries(
        state_dir,
        ("oncall", "rollback", "new_checkout", "failed", 6, "HTTP 500", timedelta(minutes=3)),
    )
    entry = Path(__file__).resolve().parents[2] / "app" / "main.py"
    at = AppTest.from_file(str(entry), default_timeout=30).run()
    assert not at.exception
    shown = [w.value for w in at.warning]
    assert any(
        text.startswith("1 webhook notification failed in the last 24 h:") for text in shown
    ), shown
    assert not any("secret" in text for text in shown)
