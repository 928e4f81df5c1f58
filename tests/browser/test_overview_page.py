"""The overview page in a real Chromium: the numbers a user reads, from data we wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import grid
from tests.support.dashboards import seeded_dashboard as start_seeded
from tests.support.servers import Process, free_port

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
    closed = free_port()
    server = start_seeded(
        tmp_path_factory.mktemp("state"),
        FLAGS,
        env={
            "ROLLOUT_PROMETHEUS_URL": f"http://127.0.0.1:{closed}",
            "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS": "1",
        },
    )
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
