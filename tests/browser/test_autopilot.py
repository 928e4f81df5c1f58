"""The autopilot as a person uses it, in a real Chromium: on Flag detail an operator types
a bad plan, fixes it and attaches it, finds it in the overview's Autopilot column, pauses
it, reloads, resumes it; a second tab left open on the active plan presses Pause after
the first paused it and is told who did. The screenshot of a plan after a real
rollback (docs/screenshots/autopilot.png) is taken here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.autopilot.model import PlanStatus
from tests.support import grid
from tests.support.autopilot import AutopilotParts
from tests.support.dashboards import seeded_dashboard
from tests.support.servers import Process

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
  checkout:
    state: rollout
    rollout: {percentage: 10}
  search:
    state: rollout
    rollout: {percentage: 10}
  billing:
    state: rollout
    rollout: {percentage: 10}
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """The dashboard in demo mode (a local operator) on the reference workload."""
    state = tmp_path_factory.mktemp("autopilot")
    server = seeded_dashboard(state, FLAGS, env={"ROLLOUT_DEMO": "true"})
    yield server, state
    server.stop()


def _flag_page(chromium: Browser, server: Process, flag: str) -> Page:
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/flag_detail?env=production&flag={flag}&refresh=off")
    expect(page.get_by_role("heading", name="Autopilot")).to_be_visible(timeout=45_000)
    return page


def _no_error(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def _type_plan(page: Page, steps: str, soak: str, hours: str = "") -> None:
    page.get_by_role("textbox", name="Steps (%)").fill(steps)
    page.get_by_role("textbox", name="Soak at each step").fill(soak)
    page.get_by_role("textbox", name="Allowed hours for advancing").fill(hours)


def test_set_see_pause_reload_resume_and_a_stale_tab(chromium: Browser, dashboard):
    server, state = dashboard
    parts = AutopilotParts(state, "checkout")
    page = _flag_page(chromium, server, "checkout")
    expect(page.get_by_text("No rollout plan: the flag moves only")).to_be_visible()

    # a bad plan first: each problem named, nothing written
    _type_plan(page, "50,25", "soon", "weekdays 9-5")
    page.get_by_role("button", name="Attach a rollout plan").click()
    expect(page.get_by_text("The plan was not saved (nothing was written):")).to_be_visible(
        timeout=30_000
    )
    for problem in (
        "steps must rise, each once (1,5,25,50)",
        "soak 'soon': write it as 30m, 45s, 2h or 1h30m",
        "allowed hours: unknown days 'weekdays' (mon … sun)",
    ):
        expect(page.get_by_text(problem)).to_be_visible()
    assert parts.plans.get("production", "checkout") is None
    # fixed one field at a time: still refused while the soak is wrong
    _type_plan(page, "10,25,50,100", "soon")
    page.get_by_role("button", name="Attach a rollout plan").click()
    expect(page.get_by_text("soak 'soon': write it as 30m, 45s, 2h or 1h30m")).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_text("steps must rise")).to_have_count(0)
    _type_plan(page, "10,25,50,100", "30m")
    page.get_by_role("button", name="Attach a rollout plan").click()
    expect(page.get_by_text("Plan saved: 10 → 25 → 50 → 100 %, soak 30 min")).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_text("The plan was not saved")).to_have_count(0)
    stored = parts.plans.get("production", "checkout")
    assert stored is not None and stored.status is PlanStatus.ACTIVE
    # nobody runs the controller here: the page says so
    expect(
        page.get_by_text("No autopilot is running: start rollout-dashboard autopilot")
    ).to_be_visible()

    # the overview's Autopilot column
    page.goto(f"{server.url}/?env=production")
    grid.cells(page, "→ 25 % at the next tick")
    expect(
        page.get_by_text("No autopilot is running: start rollout-dashboard autopilot")
    ).to_be_visible()

    # back on Flag detail, and a second tab on the active plan, left open
    page.goto(f"{server.url}/flag_detail?env=production&flag=checkout&refresh=off")
    pause = page.get_by_role("button", name="Pause the plan")
    expect(pause).to_be_visible(timeout=45_000)
    stale = _flag_page(chromium, server, "checkout")
    expect(stale.get_by_role("button", name="Pause the plan")).to_be_visible()

    page.get_by_role("textbox", name="Reason for pausing, resuming or aborting").fill("lunch")
    pause.click()
    expect(
        page.get_by_text("Plan paused. The autopilot leaves the flag at rollout 10 %")
    ).to_be_visible(timeout=30_000)
    page.reload()
    # the status line (the plan's audit record, in the history grid, says it too)
    status = page.get_by_test_id("stAlertContentWarning")
    expect(status.get_by_text("Paused by local-operator: lunch")).to_be_visible(timeout=45_000)
    expect(page.get_by_text("Plan paused.")).to_have_count(0)  # said once
    resume = page.get_by_role("button", name="Resume the plan")
    expect(resume).to_be_visible()

    stale.get_by_role("button", name="Pause the plan").click()
    expect(
        stale.get_by_text(
            "Not paused: changed meanwhile by local-operator: the plan is now paused by "
            "local-operator: lunch. The page shows it now."
        )
    ).to_be_visible(timeout=30_000)
    expect(stale.get_by_role("button", name="Resume the plan")).to_be_visible()

    resume.click()
    expect(page.get_by_text("Plan resumed. The autopilot goes on from rollout 10 %")).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_role("button", name="Pause the plan")).to_be_visible()
    resumed = parts.plans.get("production", "checkout")
    assert resumed is not None and resumed.status is PlanStatus.ACTIVE
    actions = [e.action for e in parts.audit.entries("checkout", environment="production")]
    assert actions == ["plan_resume", "plan_pause", "plan_set"]  # the stale Pause wrote nothing
    _no_error(page)
    _no_error(stale)
    stale.close()
    page.close()
    parts.close()


def test_enter_in_the_plan_editor_or_the_reason_box_saves_nothing(chromium: Browser, dashboard):
    """Enter in any box of the plan editor never attaches the plan, and Enter in the
    pause reason never pauses: only the buttons act."""
    server, state = dashboard
    parts = AutopilotParts(state, "billing")
    page = _flag_page(chromium, server, "billing")
    _type_plan(page, "10,25,50", "30m", "mon-fri 09-17 UTC")
    for box in ("Steps (%)", "Soak at each step", "Allowed hours for advancing"):
        page.get_by_role("textbox", name=box).press("Enter")
        page.wait_for_timeout(1_500)  # time for a submit to run, had Enter sent one
        expect(page.get_by_text("Plan saved")).to_have_count(0)
        assert parts.plans.get("production", "billing") is None, box
    page.get_by_role("button", name="Attach a rollout plan").click()
    expect(page.get_by_text("Plan saved: 10 → 25 → 50 %, soak 30 min")).to_be_visible(
        timeout=30_000
    )
    reason = page.get_by_role("textbox", name="Reason for pausing, resuming or aborting")
    expect(reason).to_be_visible(timeout=30_000)
    reason.fill("coffee")
    reason.press("Enter")
    page.wait_for_timeout(1_500)
    saved = parts.plans.get("production", "billing")
    assert saved is not None and saved.status is PlanStatus.ACTIVE
    expect(page.get_by_role("button", name="Pause the plan")).to_be_visible()
    _no_error(page)
    page.close()
    parts.close()


def test_a_plan_after_a_real_rollback_on_flag_detail_and_the_overview(
    chromium: Browser, dashboard, tmp_path: Path
):
    server, state = dashboard
    parts = AutopilotParts(state, "search")
    parts.set_plan()
    ticker = parts.controller("web-1:4242")
    parts.evaluations(0.10)
    assert str(ticker.tick().outcome("search").decision.move) == "advance"  # type: ignore[union-attr]
    parts.after_the_step()  # the failures are counted once the new step's first slot ends
    parts.evaluations(0.25, errors_on=2_000)  # the treatment fails at 25 %
    assert str(ticker.tick().outcome("search").decision.move) == "rollback"  # type: ignore[union-attr]

    page = _flag_page(chromium, server, "search")
    expect(page.get_by_text("Paused: rollback 25 % → 10 %: error_rate failed")).to_be_visible()
    timeline = grid.cells(page, "▶️ 10 %", index=_grid_index(page, "Step"))
    assert any(
        c.startswith("not while the plan is paused; rolled back from here ") for c in timeline
    ), timeline
    events = grid.cells(page, "rollback 25 → 10 %", index=_grid_index(page, "Event"))
    assert "advance 10 → 25 %" in events

    # the overview says what the autopilot did, and when
    page.goto(f"{server.url}/?env=production")
    row = grid.row(page, "search", 6, offset=1)  # Health, Flag, Rollout %, Errors, Why, …
    assert any(c.startswith("rolled back 25 → 10 % ") for c in row), row
    _screenshot(page, tmp_path / "autopilot-overview.png")

    # the person looked, fixed the treatment and resumes: the plan climbs again from 10 %
    page.goto(f"{server.url}/flag_detail?env=production&flag=search&refresh=off")
    page.get_by_role("button", name="Resume the plan").click()
    expect(page.get_by_text("Plan resumed. The autopilot goes on from rollout 10 %")).to_be_visible(
        timeout=45_000
    )
    expect(page.get_by_text("autopilot: leader web-1:4242, last tick")).to_be_visible()
    # the timeline is redrawn after the message above: wait for the resumed plan's words
    resumed = "in 30 min if every gate passes; rolled back from here"
    expect(page.locator('[role="gridcell"]').filter(has_text=resumed)).to_have_count(
        1, timeout=45_000
    )
    timeline = grid.cells(page, "▶️ 10 %", index=_grid_index(page, "Step"))
    assert any(
        c.startswith("in 30 min if every gate passes; rolled back from here") for c in timeline
    ), timeline
    page.get_by_role("heading", name="Autopilot").evaluate(
        "heading => heading.scrollIntoView({block: 'start'})"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _screenshot(page, SCREENSHOTS / "autopilot.png")
    _no_error(page)
    page.close()
    parts.close()


def _grid_index(page: Page, header: str, timeout_s: float = 30) -> int:
    """The position among the page's grids of the one with a column `header`, once drawn."""
    deadline = time.monotonic() + timeout_s
    while True:
        grids = page.locator('[data-testid="stDataFrame"]')
        seen = [
            grids.nth(i).locator('[role="columnheader"]').all_inner_texts()
            for i in range(grids.count())
        ]
        for index, headers in enumerate(seen):
            if header in [h.strip() for h in headers]:
                return index
        assert time.monotonic() < deadline, f"no grid with a {header!r} column in {seen}"
        page.wait_for_timeout(250)


def _screenshot(page: Page, path: Path) -> None:
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
