"""The canary page in Streamlit's AppTest against a SQLite database seeded with requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.analysis.canary import CanaryPolicy
from app.metrics_db.database import open_database
from queries.canary import insert_request_rollups
from tests.support.canary_workload import CLEAN_ENV, canary_rollups

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
PAGE = "../pages/canary.py"

FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 1}
"""


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / f"feature_flags_{CLEAN_ENV}.yaml").write_text("flags: {}\n")
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    # ends an hour after now: every window up to 3 h back from now is fully covered
    now = datetime.now(UTC).replace(microsecond=0)
    insert_request_rollups(engine, canary_rollups(now + timedelta(hours=1), hours=5.0))
    engine.dispose()
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _canary_page(app: AppTest) -> AppTest:
    """The canary page opened directly (as from a shared URL) under the entry point."""
    return app.switch_page(PAGE).run()


def test_canary_page_shows_a_failing_verdict_and_its_numbers(seeded):
    at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    assert not at.exception
    assert [e.value for e in at.error] == ["## Canary verdict: FAIL"]
    table = at.dataframe[0].value.set_index("Metric")
    assert table.loc["error ratio", "Canary"] == "10.00 %"
    assert table.loc["error ratio", "Baseline"] == "1.00 %"
    assert table.loc["error ratio", "Verdict"] == "🔴 fail"
    assert table.loc["p99 latency", "Canary"] == "390.0 ms"
    assert table.loc["p99 latency", "Baseline"] == "150.0 ms"
    assert any("metrics database roll-ups" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
    assert at.query_params["window"] == "15m"


def test_canary_page_reads_environment_and_window_from_the_url(seeded):
    app = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    app.query_params["env"] = CLEAN_ENV
    app.query_params["window"] = "1h"
    at = _canary_page(app)
    assert not at.exception
    assert [s.value for s in at.success] == ["## Canary verdict: PASS"]
    assert at.selectbox[1].value == "1h"
    table = at.dataframe[0].value.set_index("Metric")
    assert table.loc["error ratio", "Canary"] == "1.00 %"
    assert table.loc["error ratio", "Verdict"] == "🟢 pass"


def test_a_changed_verdict_is_highlighted(seeded):
    at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    key = "canary_verdict:production:15m"
    assert at.session_state[key] == "fail"
    at.session_state[key] = "pass"
    at.run()
    assert not at.exception
    assert [t.value for t in at.toast] == ["Canary verdict changed: pass → fail"]


def test_canary_page_with_no_request_data_is_inconclusive(
    tmp_path, monkeypatch, no_rollout_environment
):
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    try:
        at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    finally:
        st.cache_resource.clear()
    assert not at.exception
    assert at.info[0].value == "## Canary verdict: INCONCLUSIVE"


CANARY_FLAGS = """
version: "1"
flags:
  canary_deployment:
    state: rollout
    rollout: {percentage: 10}
"""


def test_canary_page_names_its_flag_counts_requests_and_says_since_when_it_fails(seeded):
    (seeded / "feature_flags.yaml").write_text(CANARY_FLAGS)
    at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "The canary belongs to flag **canary_deployment** in production" in text
    assert "at **10 %**" in text
    # the regression runs through the whole window: failing since at least its start
    assert "Failing since at least" in text and "over the whole window" in text
    counts = at.dataframe[1].value.set_index("Track")
    # 15 min of 15 s intervals = 60 intervals: stable 100 / 1, canary 20 / 2 each
    assert counts.loc["canary", "Requests"] == "1,200"
    assert counts.loc["canary", "Errors"] == "120"
    assert counts.loc["stable", "Requests"] == "6,000"
    assert counts.loc["stable", "Error ratio"] == "1.00 %"
    assert not at.warning


def test_canary_page_says_when_its_flag_is_not_configured(seeded):
    at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "No flag **canary_deployment** in production" in warning
    assert "ROLLOUT_CANARY_FLAG" in warning


def test_how_the_verdict_is_made_reads_the_policy(seeded):
    at = _canary_page(AppTest.from_file(str(ENTRY_POINT), default_timeout=30))
    policy = CanaryPolicy()
    prose = " ".join(m.value for m in at.markdown)
    assert f"{100 * (1 - policy.alpha):g} % confidence" in prose  # 98 %
    assert f"Fewer than {policy.min_requests} requests" in prose
    assert f"+{100 * policy.latency_tolerance:g} % on the medians" in prose
    assert f"+{100 * policy.error_ratio_floor:g} point" in prose
