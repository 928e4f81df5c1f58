"""The Phases page in AppTest over a seeded SQLite history: the numbers a lead reads,
the CSV they download, and the page with the metrics database down."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
import streamlit.testing.v1.app_test as app_test_module
from sqlalchemy import insert
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app.metrics_db.database import open_database
from app.metrics_db.schema import AuditRecord
from tests.support.servers import free_port

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"

FLAGS = """
version: "7"
phases:
  - {number: 1, name: Config, planned_week: 1}
  - {number: 2, name: Health, planned_week: 2}
  - {number: 3, name: Metrics, planned_week: 3}
flags:
  a1:
    state: enabled
    metadata: {phase: 1}
  a2:
    state: rollout
    rollout: {percentage: 100}
    metadata: {phase: 1}
  b1:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 2}
  c1:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 3, dependencies: [b1]}
"""
STAGING = """
flags:
  b1:
    state: enabled
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday: the project starts here


def _audit(days, flag, before, after, outcome="applied", env="production", guards=()):
    return {
        "at": T0 + timedelta(days=days),
        "actor": "ops",
        "action": "advance",
        "flag": flag,
        "environment": env,
        "from_state": "rollout",
        "from_percentage": before,
        "to_state": "rollout",
        "to_percentage": after,
        "reason": "test",
        "outcome": outcome,
        "override": False,
        "idempotency_key": None,
        "guards": list(guards),
    }


HISTORY = [
    _audit(0, "a1", 0, 50),  # phase 1 starts
    _audit(1, "a2", 0, 100),
    _audit(3, "a1", 50, 100),  # phase 1 finishes, in its planned week
    _audit(5, "b1", 0, 25),  # phase 2 starts
    _audit(6, "b1", 25, 100, outcome="failed"),  # changed nothing
    _audit(10, "b1", 25, 50),
    _audit(11, "c1", 0, 10),  # phase 3 starts although it waits for b1
    _audit(12, "c1", 10, 25, outcome="refused", guards=[{"name": "dependencies", "passed": False}]),
    _audit(-3, "b1", 0, 100, env="staging"),
]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / "feature_flags_staging.yaml").write_text(STAGING)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def seeded(state_dir: Path) -> Path:
    engine = open_database(f"sqlite:///{state_dir / 'metrics.db'}")
    with engine.begin() as connection:
        connection.execute(insert(AuditRecord), HISTORY)
    engine.dispose()
    return state_dir


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[MemoryMediaFileStorage]:
    """The media stores AppTest creates, so a download button's bytes can be read."""
    stores: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, media_endpoint: str) -> None:
            super().__init__(media_endpoint)
            stores.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)
    return stores


def _page(**query: str) -> AppTest:
    # under the entry point, as a person opens it: run alone, pages/ would be on sys.path
    # and pages/requests.py would shadow the `requests` package
    app = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    for name, value in query.items():
        app.query_params[name] = value
    return app.switch_page("../pages/phases.py").run()


def test_phase_table_shows_progress_status_and_actual_dates(seeded):
    at = _page()
    assert not at.exception
    table = at.dataframe[0].value.set_index("Phase")
    assert list(table.index) == [1, 2, 3]
    assert table.loc[1, "Progress"] == pytest.approx(100.0)
    assert table.loc[2, "Progress"] == pytest.approx(50.0)
    assert table.loc[3, "Progress"] == pytest.approx(10.0)
    assert list(table["Status"]) == ["complete", "rolling out", "blocked"]
    assert table.loc[3, "Blocked by"] == "b1"
    assert table.loc[1, "Planned"] == "2026-03-02 → 2026-03-08"
    assert table.loc[3, "Planned"] == "2026-03-16 → 2026-03-22"
    assert table.loc[1, "Actual start"] == "2026-03-02 09:00"
    assert table.loc[1, "Actual finish"] == "2026-03-05 09:00"
    assert table.loc[1, "Schedule"] == "on time"
    assert table.loc[2, "Actual start"] == "2026-03-07 09:00"
    assert table.loc[2, "Actual finish"] == "–"
    assert table.loc[3, "Actual start"] == "2026-03-13 09:00"
    assert table.loc[1, "At 100 %"] == "2/2"

    caption = " ".join(c.value for c in at.caption)
    assert "Source: **flag configuration + audit history**" in caption
    assert "6 applied change(s) in production" in caption
    assert "project start **2026-03-02** (first applied change)" in caption
    reasons = " ".join(m.value for m in at.markdown)
    assert "c1 waits for b1 (phase 2, at 50 %)" in reasons
    assert "c1: advance to 25 % refused on 2026-03-14 (failed guard: dependencies)" in reasons
    assert not at.warning


def test_csv_export_holds_the_phase_table(seeded, downloads):
    at = _page()
    button = at.get("download_button")[0]
    assert button.proto.label == "Download the phase table (CSV)"
    name = button.proto.url.rsplit("/", 1)[1]
    content = downloads[-1].get_file(name).content.decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert [r["phase"] for r in rows] == ["1", "2", "3"]
    first, second, third = rows
    assert first["actual_start"] == "2026-03-02T09:00:00+00:00"
    assert first["actual_finish"] == "2026-03-05T09:00:00+00:00"
    assert (first["schedule"], first["status"], first["progress_percent"]) == (
        "on_time",
        "complete",
        "100.0",
    )
    assert (second["planned_start"], second["planned_finish"]) == ("2026-03-09", "2026-03-15")
    assert second["actual_finish"] == "" and second["progress_percent"] == "50.0"
    assert second["flags"] == "b1"
    assert (third["status"], third["blocked_by"]) == ("blocked", "b1")
    assert third["reasons"].startswith("c1 waits for b1 (phase 2, at 50 %); c1: advance to 25 %")


def test_environment_comes_from_the_url(seeded):
    at = _page(env="staging")
    assert at.selectbox[0].value == "staging"
    table = at.dataframe[0].value.set_index("Phase")
    # In staging b1 is enabled and its history is one change three days before T0.
    assert table.loc[2, "Progress"] == pytest.approx(100.0)
    assert table.loc[2, "Actual finish"] == "2026-02-27 09:00"
    assert table.loc[1, "Planned"] == "2026-02-27 → 2026-03-05"
    at.selectbox[0].set_value("production").run()
    assert at.query_params["env"] == "production"
    assert at.dataframe[0].value.set_index("Phase").loc[2, "Progress"] == pytest.approx(50.0)


def test_without_history_the_page_says_so(state_dir):
    open_database(f"sqlite:///{state_dir / 'metrics.db'}").dispose()
    at = _page()
    assert not at.exception
    assert "no applied change in production yet" in at.info[0].value
    table = at.dataframe[0].value.set_index("Phase")
    # Without history the config counts: every phase has a flag above 0 % now, so each
    # started before the (empty) history, and the page says what that means.
    assert set(table["Actual start"]) == {"before the history"}
    assert "started before the audit history begins" in " ".join(c.value for c in at.caption)


def test_database_down_leaves_an_empty_history_and_a_notice(state_dir, monkeypatch):
    closed = free_port()
    monkeypatch.setenv(
        "ROLLOUT_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{closed}/x"
    )
    at = _page()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "metrics database unavailable" in warnings
    assert "audit history cannot be read" in warnings
    table = at.dataframe[0].value.set_index("Phase")
    assert table.loc[1, "Progress"] == pytest.approx(100.0)  # the config still answers
    # Without history the config counts: every phase has a flag above 0 % now, so each
    # started before the (empty) history, and the page says what that means.
    assert set(table["Actual start"]) == {"before the history"}
    assert "started before the audit history begins" in " ".join(c.value for c in at.caption)
    assert "history unavailable" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
