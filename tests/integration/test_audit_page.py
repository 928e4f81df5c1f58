"""The Audit page's table and record detail in AppTest: the environment of every record,
and Restore offered to operators for an applied record only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from app.metrics_db.database import open_database
from app.metrics_db.schema import AuditRecord

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 10}
"""


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / "feature_flags_staging.yaml").write_text("flags: {}\n")
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as connection:
        connection.execute(
            insert(AuditRecord),
            [
                _record(now - timedelta(minutes=5), "production", "applied"),
                _record(now - timedelta(minutes=1), "staging", "refused"),
            ],
        )
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _record(at, environment, outcome):
    return {
        "at": at,
        "actor": "bob",
        "action": "rollback",
        "flag": "alpha",
        "environment": environment,
        "from_state": "rollout",
        "from_percentage": 25,
        "to_state": "rollout",
        "to_percentage": 10,
        "reason": "test",
        "outcome": outcome,
        "override": False,
        "idempotency_key": None,
        "guards": [],
    }


def _audit_page(record_id: str) -> AppTest:
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    at.run()
    at.query_params["id"] = record_id
    at.switch_page("../pages/audit.py").run()
    assert not at.exception
    return at


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_every_record_shows_its_environment_and_an_operator_may_restore_an_applied_one(
    state, monkeypatch
):
    monkeypatch.setenv("ROLLOUT_DEMO", "true")
    at = _audit_page("1")
    table = at.dataframe[0].value
    assert list(table["Environment"]) == ["staging", "production"]
    assert "Record 1: rollback alpha in production" in at.success[0].value
    assert "↩️ Restore #1" in _buttons(at)
    refused = _audit_page("2")
    assert not [b for b in _buttons(refused) if "Restore" in b]


def test_a_viewer_is_offered_no_restore(state):
    at = _audit_page("1")
    assert not [b for b in _buttons(at) if "Restore" in b]
    assert "No audit record #77." in [w.value for w in _audit_page("77").warning]


def test_a_record_of_an_older_version_shows_as_stored(state):
    engine = open_database(f"sqlite:///{state / 'metrics.db'}")
    older = _record(datetime.now(UTC), "production", "applied")
    older |= {"action": "promote", "from_state": "unknown", "to_state": "archived"}
    with engine.begin() as connection:
        connection.execute(insert(AuditRecord), [older])
    at = _audit_page("3")
    assert "Record 3: promote alpha in production, unknown 25 % → unknown 10 %" in (
        at.success[0].value
    )
    table = at.dataframe[0].value
    assert list(table["Action"]) == ["promote", "rollback", "rollback"]
    assert table["From"].iloc[0] == "unknown 25 %"
