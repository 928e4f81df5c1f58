"""Why, at a glance, in a real Chromium: the overview says why a flag is unhealthy and
links to it, the flag detail shows the error rate of each variant, and its
auto-refreshing panels follow what another operator does while the page is open."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.metrics_db.database import insert_rollups
from app.metrics_db.records import EvaluationRollup
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import open_runtime
from app.settings import Settings
from app.text import flag_detail_url
from tests.support import grid
from tests.support.dashboards import seeded_dashboard
from tests.support.servers import Process

pytestmark = pytest.mark.browser
#: a fresh server's first run imports pandas, scipy and plotly: slow on a busy machine
FIRST_DRAW_MS = 120_000

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
  checkout:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 1}
  delta:
    state: rollout
    rollout: {percentage: 25}
    metadata: {phase: 2}
"""

#: checkout per 15 s: "on" 200 evaluations of which 3 fail (1.5 %), "off" 200 with none:
#: 0.75 % overall, under every threshold, but the treatment is proven worse
CHECKOUT = (("on", "split", 197, 0), ("on", "error", 3, 3), ("off", "default", 200, 0))


@dataclass(frozen=True)
class Dashboard:
    server: Process
    state: Path
    database_url: str

    @property
    def url(self) -> str:
        return self.server.url


def _checkout_rollups(end: datetime, hours: float) -> list[EvaluationRollup]:
    count = int(hours * 3600 / 15)
    return [
        EvaluationRollup(
            end - timedelta(seconds=15 * (i + 1)),
            15,
            "production",
            "checkout",
            variant,
            reason,
            evaluations,
            errors,
        )
        for i in range(count)
        for variant, reason, evaluations, errors in CHECKOUT
    ]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The demo dashboard (a labelled local operator) on a database holding the
    reference workload and checkout's failing treatment around "now"; no Prometheus."""
    state = tmp_path_factory.mktemp("state")
    server = seeded_dashboard(
        state,
        FLAGS,
        seed=lambda engine, end: insert_rollups(engine, _checkout_rollups(end, hours=2.0)),
        env={"ROLLOUT_DEMO": "true"},
    )
    url = f"sqlite:///{state / 'metrics.db'}"
    yield Dashboard(server, state, url)
    server.stop()


def _all_cells(page: Page, waiting_for: str, *exactly: str) -> list[str]:
    """Every grid's cells on the page, once one of them reads `waiting_for` and, for each
    of `exactly`, one reads exactly that (grids draw one after another: the one wanted
    may come after another grid already shows `waiting_for`)."""
    cells = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
    expect(cells.filter(has_text=waiting_for).first).to_be_attached(timeout=FIRST_DRAW_MS)
    for text in exactly:
        expect(cells.get_by_text(text, exact=True).first).to_be_attached(timeout=FIRST_DRAW_MS)
    return cells.all_inner_texts()


def _act_elsewhere(dashboard: Dashboard, action: Action, flag: str) -> None:
    """Another operator, in another process's runtime, acts on `flag`."""
    settings = Settings(state_dir=dashboard.state, database_url=dashboard.database_url)
    rt = open_runtime(settings)
    identity = Identity("other-operator", Role.OPERATOR, "cli")
    result = rt.execute(ActionRequest(action, "production", "seen elsewhere", identity, flag=flag))
    assert result.applied, result.error


def test_the_open_page_follows_another_operators_kill_without_a_rerun(
    chromium: Browser, dashboard: Dashboard
):
    page = chromium.new_page(viewport={"width": 1600, "height": 1200})
    page.goto(f"{dashboard.url}/flag_detail?env=production&flag=delta&refresh=10%20s")
    expect(page.get_by_text("No applied change recorded: nothing to propagate.")).to_be_visible(
        timeout=FIRST_DRAW_MS
    )
    state = page.get_by_test_id("stMetric").filter(has_text="State").get_by_test_id("stMetricValue")
    expect(state).to_have_text("rollout")
    _act_elsewhere(dashboard, Action.KILL, "delta")
    # the next refresh of the panels (every 10 s), with no reload and no click
    expect(page.get_by_text("Most recent applied change: 25 → 0 % · other-operator")).to_be_visible(
        timeout=40_000
    )
    expect(page.get_by_text("No applied change recorded: nothing to propagate.")).to_have_count(0)
    expect(page.get_by_text("other-operator").first).to_be_visible()
    # the top of the page follows: never a state older than the history below it
    expect(state).to_have_text("disabled")
    # the overview: the treatment is out, not "mitigated" (no evidence said it was worse)
    page.goto(dashboard.url)
    health, flag, _percent, _errors, why = grid.row(page, "delta", width=5, offset=1)
    assert flag == "delta" and health != "🔴 unhealthy"
    assert why.startswith("treatment out ") and why.endswith(" ago")
    page.close()


def test_the_overview_says_why_and_the_flag_link_opens_its_detail(
    chromium: Browser, dashboard: Dashboard
):
    page = chromium.new_page(viewport={"width": 1600, "height": 900})
    page.goto(dashboard.url)
    health, flag, _percent, _errors, why = grid.row(page, "alpha", width=5, offset=1)
    assert (health, flag, why) == ("🔴 unhealthy", "alpha", "errors 6.67 % > 5 %")
    # the link behind the key: the cell's accessible text is its URL
    links = page.locator('[data-testid="stDataFrame"] [role="gridcell"]').all_inner_texts()
    assert flag_detail_url("production", "alpha") in links
    page.goto(dashboard.url + flag_detail_url("production", "alpha"))
    expect(page.get_by_role("heading", name="alpha")).to_be_visible(timeout=FIRST_DRAW_MS)
    expect(page.get_by_text("🔴 unhealthy errors 6.67 % > 5 %")).to_be_visible()
    page.close()


def test_flag_detail_shows_the_error_rate_of_each_variant_and_why(
    chromium: Browser, dashboard: Dashboard
):
    page = chromium.new_page(viewport={"width": 1600, "height": 1400})
    page.goto(f"{dashboard.url}/flag_detail?env=production&flag=checkout&range=1h")
    # 0.75 % overall is under every threshold: treatment against control, judged at the
    # gate's level over the overview's window, is what says why, with the numbers' window
    health = page.get_by_text("🟠 degraded on − off +1.50 pt: proven worse")
    expect(health).to_be_visible(timeout=FIRST_DRAW_MS)
    expect(health).to_contain_text(": proven worse · errors 0.75 % last 5 min")
    # the guards, over their own window, say what they prove beside it
    more = "The guards prove more over the last 15 min: error rate failed on data"
    expect(page.get_by_test_id("stAlertContentWarning").get_by_text(more)).to_be_visible()
    # the errors by variant are the guard report's counts, over its window
    counted = "Counted over the last 15 min, as the guards count them."
    expect(page.get_by_text(counted)).to_be_visible()
    rows = _all_cells(page, "1.50 %", "on", "off")
    on = rows[rows.index("on") : rows.index("on") + 4]
    off = rows[rows.index("off") : rows.index("off") + 4]
    assert on[3] == "1.50 %" and off[3] == "0.00 %"
    words = "on − off +1.50 pt (always-valid interval +"
    warning = page.get_by_test_id("stAlertContentWarning").get_by_text(words)
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("): proven worse ")
    expect(warning).to_contain_text(": a rollback should help.")
    # the error guard of the next step fails below its threshold: the always-valid test
    # on the counts of the last 15 min (no change recorded) proves the treatment worse
    proof = "0.75 % of 24000 evaluations failed; on proven to fail more often than off"
    guard = page.locator('[role="gridcell"]').filter(has_text=proof)
    expect(guard).to_have_count(1)
    expect(guard).to_contain_text("on − off +1.50 pt (always-valid interval +")
    page.close()
