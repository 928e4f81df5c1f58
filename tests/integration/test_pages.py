"""Pages run in Streamlit's AppTest against a seeded SQLite database (no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.schema import AuditRecord
from app.text import flag_detail_url
from tests.support.workload import reference_rollups

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"

FLAGS = """
version: "7"
phases:
  - {number: 1, name: First, planned_week: 1}
  - {number: 2, name: Second, planned_week: 2}
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1}
  beta:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 2, dependencies: [alpha]}
"""


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    engine = open_database(url)
    now = datetime.now(UTC).replace(microsecond=0)
    insert_rollups(engine, reference_rollups(now + timedelta(hours=1), hours=2.0))
    with engine.begin() as connection:
        connection.execute(
            insert(AuditRecord),
            [
                _audit(now - timedelta(days=2), "bob", 5, 10, "applied"),
                _audit(now - timedelta(minutes=12), "alice", 10, 66, "applied"),
                _audit(now - timedelta(minutes=1), "mallory", 66, 100, "failed"),
            ],
        )
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _audit(at, actor, before, after, outcome):
    return {
        "at": at,
        "actor": actor,
        "action": "advance",
        "flag": "alpha",
        "environment": "production",
        "from_state": "rollout",
        "from_percentage": before,
        "to_state": "rollout",
        "to_percentage": after,
        "reason": "test",
        "outcome": outcome,
        "override": False,
        "idempotency_key": None,
        "guards": [],
    }


def test_overview_page_shows_numbers_and_the_last_applied_change(seeded):
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Flag")
    table.index = [url.rsplit("flag=", 1)[1] for url in table.index]  # links to the detail
    assert table.loc["alpha", "Evaluations"] == "1.00/s"
    assert table.loc["alpha", "Errors"] == "6.67 %"
    assert table.loc["alpha", "Health"] == "🔴 unhealthy"
    assert (
        table.loc["alpha", "Last change"] == "12 min ago · alice · 10 → 66 %"
    )  # not the failed one
    assert table.loc["beta", "Evaluations"] == "0.20/s"
    assert any("metrics database roll-ups" in c.value for c in at.caption)
    assert "Local operator" not in " ".join(c.value for c in at.sidebar.caption)
    assert "Read-only viewer" in " ".join(c.value for c in at.sidebar.caption)


def test_overview_filters_come_from_the_url(seeded):
    app = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    app.query_params["phase"] = "2"
    at = app.run()
    assert list(at.dataframe[0].value["Flag"]) == [flag_detail_url("production", "beta")]
    at.text_input[0].set_value("zzz").run()
    assert at.info[0].value == "No flag matches these filters."
    assert at.query_params["q"] == "zzz"


def test_phases_page_shows_progress_and_what_blocks(seeded):
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    at.run()
    at.switch_page("../pages/phases.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Phase")
    assert table.loc[1, "Progress"] == pytest.approx(66.0)
    assert table.loc[2, "Progress"] == pytest.approx(10.0)
    assert table.loc[2, "Status"] == "blocked"
    assert table.loc[2, "Blocked by"] == "alpha"
