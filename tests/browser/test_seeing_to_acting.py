"""From seeing to acting (issue 8 §6), in a real Chromium: the canary names its flag and
aborts it through the guarded dialog; the phases page plans from the config and lists an
unhealthy flag as a blocker; the overview fits 1024x768; the theme follows the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.flags.loader import load_config
from app.flags.model import FlagState
from queries.canary import insert_request_rollups
from tests.support import grid
from tests.support.canary_workload import canary_rollups
from tests.support.dashboards import seeded_dashboard
from tests.support.servers import Process

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _screenshot_when_drawn(page: Page, name: str, cell: str) -> None:
    """The page as a reader sees it once its first grid and both charts have drawn."""
    grid.cells(page, cell)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


# alpha is unhealthy in the reference workload (6.67 % errors); canary_deployment is what
# the production canary (a regression in `canary_rollups`) belongs to.
FLAGS = """
version: "1"
phases:
  start: 2026-01-05
  list:
    - {number: 1, name: Alpha phase, planned_week: 1}
    - {number: 2, name: Beta phase, planned_week: 2}
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1}
  beta:
    state: enabled
    metadata: {phase: 2}
  canary_deployment:
    state: rollout
    rollout: {percentage: 10}
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    state = tmp_path_factory.mktemp("state")
    server = seeded_dashboard(
        state,
        FLAGS,
        seed=lambda engine, end: insert_request_rollups(engine, canary_rollups(end, hours=2.0)),
        env={"ROLLOUT_DEMO": "true"},
    )
    yield server, state
    server.stop()


def _no_error(page: Page) -> None:
    expect(page.get_by_text("Traceback")).to_have_count(0)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_the_canary_names_its_flag_and_the_link_opens_its_detail(chromium: Browser, dashboard):
    server, _ = dashboard
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server.url}/canary")
    expect(page.get_by_text("Canary verdict: FAIL")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("The canary belongs to flag canary_deployment")).to_be_visible()
    expect(page.get_by_text("Failing since at least")).to_be_visible()
    expect(page.get_by_text("Requests per track")).to_be_visible()
    assert "10.00 %" in grid.cells(page, "canary", index=1)  # requests per track, canary row
    _screenshot_when_drawn(page, "canary.png", "error ratio")
    page.get_by_role("link", name="Open canary_deployment on Flag detail").click()
    expect(page.get_by_role("heading", name="canary_deployment")).to_be_visible(timeout=30_000)
    assert "flag=canary_deployment" in page.url
    _no_error(page)
    page.close()


def test_abort_kills_the_canary_flag_through_the_dialog(chromium: Browser, dashboard):
    server, state = dashboard
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server.url}/canary?env=production")
    expect(page.get_by_text("Abort the canary")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Kill").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=15_000)
    expect(dialog).to_contain_text("canary_deployment", timeout=30_000)  # the exact change
    dialog.get_by_label("Reason (required, goes to the audit log)").fill("canary fails")
    typed = dialog.locator('[data-testid="stTextInput"] input')  # "Type the flag key"
    typed.fill("canary_deployment")
    typed.press("Enter")
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_enabled(timeout=15_000)
    confirm.click()
    expect(page.get_by_text("Applied:")).to_be_visible(timeout=30_000)
    config = load_config(state / "feature_flags.yaml", "production")
    flag = config.flag("canary_deployment")
    assert flag.state is FlagState.DISABLED and flag.percentage == 0.0
    expect(page.get_by_text("disabled, at 0 %")).to_be_visible()
    _no_error(page)
    page.close()


def test_the_phases_page_plans_from_the_config_and_blocks_on_an_unhealthy_flag(
    chromium: Browser, dashboard
):
    server, _ = dashboard
    page = chromium.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{server.url}/phases")
    expect(page.get_by_text("Blocked by")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("project start 2026-01-05 (from the config)")).to_be_visible()
    expect(page.get_by_text("alpha is unhealthy (errors 6.67 %")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("alpha: the error guard fails")).to_be_visible()
    cells = grid.cells(page, "2026-01-05 → 2026-01-11")  # the planned week from the config
    assert "2026-01-12 → 2026-01-18" in cells
    _screenshot_when_drawn(page, "phases.png", "2026-01-05 → 2026-01-11")
    _no_error(page)
    page.close()


def test_the_overview_fits_1024_by_768(chromium: Browser, dashboard):
    server, _ = dashboard
    page = chromium.new_page(viewport={"width": 1024, "height": 768})
    page.goto(server.url)
    emergency = page.get_by_role("button", name="Emergency rollback")
    expect(emergency).to_be_visible(timeout=60_000)
    grid.cells(page, "alpha")
    table = page.locator('[data-testid="stDataFrame"]').first
    box = emergency.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1024, box
    assert box["y"] + box["height"] <= 768, box
    expect(emergency).to_have_text("🚨 Emergency rollback")  # the whole label, not "Emerge…"
    # The grid is drawn on a canvas: its accessible header cells have no size, so check
    # that the four columns come first, and that the grid and the page fit in 1024 px.
    headers = table.locator('[role="columnheader"]').all_inner_texts()
    assert [h.strip() for h in headers[:4]] == ["Health", "Flag", "Rollout %", "Errors"]
    grid_box = table.bounding_box()
    assert grid_box is not None and grid_box["x"] + grid_box["width"] <= 1024, grid_box
    # Health 110 + Flag 180 + Rollout % 100 + Errors 70 px (pages/overview.py) fit in it
    assert grid_box["width"] >= 110 + 180 + 100 + 70, grid_box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    page.close()


def test_the_theme_follows_the_browsers_dark_preference(chromium: Browser, dashboard):
    server, _ = dashboard
    backgrounds = {}
    for scheme in ("dark", "light"):
        context = chromium.new_context(color_scheme=scheme, viewport={"width": 1200, "height": 800})
        page = context.new_page()
        page.goto(server.url)
        expect(page.get_by_role("button", name="Emergency rollback")).to_be_visible(timeout=30_000)
        backgrounds[scheme] = page.locator('[data-testid="stApp"]').evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        context.close()
    red, green, blue = (int(v) for v in backgrounds["dark"][4:-1].split(",")[:3])
    assert max(red, green, blue) < 60, backgrounds
    red, green, blue = (int(v) for v in backgrounds["light"][4:-1].split(",")[:3])
    assert min(red, green, blue) > 200, backgrounds
