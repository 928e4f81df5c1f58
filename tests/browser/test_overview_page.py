"""The overview page in a real Chromium: the numbers a user reads, from data we wrote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from app.demo.launcher import streamlit_command
from app.metrics_db.database import insert_rollups, open_database
from tests.support import grid
from tests.support.servers import Process, free_port, start
from tests.support.workload import reference_rollups

pytestmark = pytest.mark.browser
FLAGS = """
version: "7"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1}
  beta:
    state: enabled
    metadata: {phase: 2}
"""


def _cells(page: Page, waiting_for: str) -> list[str]:
    return grid.cells(page, waiting_for)


def _row(page: Page, flag: str) -> list[str]:
    """The cells of the flag's row in the overview grid, as displayed."""
    return grid.row(page, flag, width=12, offset=1)


@pytest.fixture(scope="module")
def seeded_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """The dashboard on a database holding the reference workload around "now", with a
    Prometheus URL that refuses connections (so the fallback banner must show)."""
    state = tmp_path_factory.mktemp("state")
    (state / "feature_flags.yaml").write_text(FLAGS)
    url = f"sqlite:///{state / 'metrics.db'}"
    # Data running an hour past now: every 5-minute window is fully covered, so the
    # rates are exact whenever the page loads.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    insert_rollups(open_database(url), reference_rollups(end, hours=2.0))
    port, closed = free_port(), free_port()
    env = {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_DATABASE_URL": url,
        "ROLLOUT_PROMETHEUS_URL": f"http://127.0.0.1:{closed}",
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS": "1",
    }
    server = start(streamlit_command(port), env, port, state / "streamlit.log")
    yield server
    server.stop()


def test_overview_shows_the_numbers_of_the_database(chromium: Browser, seeded_dashboard):
    page = chromium.new_page(viewport={"width": 1600, "height": 900})
    page.goto(seeded_dashboard.url)
    expect(page.get_by_text("prometheus unavailable")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("metrics database roll-ups")).to_be_visible()
    # Health, Flag, Rollout %, Errors and Why first (they fit 1024 px), then the rest
    row = _row(page, "alpha")
    health, flag, percent, errors, why, phase, state, rate, _trend, split, p99, _ = row
    assert (health, flag, phase, state) == ("🔴 unhealthy", "alpha", "1", "rollout")
    assert why == "errors 6.67 % > 5 %"
    assert percent.strip() == "66"  # the accessible text of the progress bar
    assert rate == "1.00/s"
    assert split == "on 67% · off 33%"
    assert errors == "6.67 %"
    assert p99 == "9.75 ms"
    beta = _row(page, "beta")
    assert beta[0] == "🟢 healthy" and beta[7] == "0.20/s" and beta[10] == "0.50 ms"
    assert beta[4] == ""  # healthy: nothing to explain
    expect(page.get_by_text("Traceback")).to_have_count(0)
    page.close()


def test_filters_live_in_the_url(chromium: Browser, seeded_dashboard):
    page = chromium.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{seeded_dashboard.url}/?q=bet")
    assert "alpha" not in _cells(page, "beta")
    expect(page.get_by_role("textbox", name="Search")).to_have_value("bet")
    page.goto(f"{seeded_dashboard.url}/?health=unhealthy")
    assert "beta" not in _cells(page, "alpha")
    page.close()
