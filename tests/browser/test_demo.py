"""The demo as a newcomer meets it, in a real Chromium: every page opens without an
error, the numbers come from the simulated workload, and a flag is advanced and rolled
back through the dialog. The screenshots in docs/screenshots are taken here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.audit import AuditLog, Outcome
from app.autopilot.store import PlanStore
from app.demo.autopilot_demo import DEMO_PLANS
from app.flags.loader import BUNDLED_CONFIG, load_config
from app.metrics_db.database import open_database
from app.serve import streamlit_command
from tests.support import grid
from tests.support.bundled import copy_bundled_config
from tests.support.servers import Process, free_port, python_command, start

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1760, "height": 1100}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """`rollout-dashboard demo` from nothing: simulator, SQLite, bundled config."""
    state = tmp_path_factory.mktemp("demo") / "state"
    port = free_port()
    env = {"ROLLOUT_SIMULATOR_PORT": str(free_port())}
    command = python_command(
        "-m", "app.cli", "demo", "--state-dir", str(state), "--port", str(port)
    )
    server = start(command, env, port, state.parent / "demo.log")
    yield server, state
    server.stop()


def _open(chromium: Browser, url: str) -> Page:
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url)
    return page


def _no_error_element(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def _drawn(page: Page) -> None:
    """The script run has finished and every Plotly chart on the page has drawn."""
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=45_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    for index in range(charts.count()):
        expect(charts.nth(index).locator(".main-svg").first).to_be_attached(timeout=45_000)


def _screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _drawn(page)
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def test_overview_shows_every_bundled_flag_and_the_unhealthy_one_first(chromium, demo):
    server, _ = demo
    page = _open(chromium, server.url)
    cells = grid.cells(page, "🔴 unhealthy", timeout_s=60)
    assert set(load_config(BUNDLED_CONFIG).flags) <= set(cells)
    assert grid.row(page, "phase2_health_checks", width=1, offset=1) == ["🔴 unhealthy"]
    assert cells[1] == "phase2_health_checks"  # unhealthy sorts first
    expect(page.get_by_text("Local operator (demo mode")).to_be_visible()
    expect(page.get_by_role("button", name="Emergency rollback")).to_be_visible()
    _no_error_element(page)
    _screenshot(page, "overview.png")
    page.close()


@pytest.mark.parametrize(
    ("path", "shows", "screenshot"),
    [
        ("canary", "Canary verdict: FAIL", "canary.png"),
        ("phases", "Source: flag configuration", "phases.png"),
    ],
)
def test_every_page_opens_without_an_error(chromium, demo, path, shows, screenshot):
    server, _ = demo
    page = _open(chromium, f"{server.url}/{path}")
    expect(page.get_by_text(shows).first).to_be_visible(timeout=45_000)
    _no_error_element(page)
    _screenshot(page, screenshot)
    page.close()


def _act(page: Page, button: str, flag: str, reason: str) -> None:
    page.get_by_role("button", name=button).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Exact change")).to_be_visible(timeout=45_000)
    dialog.get_by_label("Reason").fill(reason)
    dialog.get_by_label("Type").fill(flag)
    dialog.get_by_label("Type").press("Tab")
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_enabled(timeout=10_000)
    confirm.click()


def test_advance_and_roll_back_through_the_dialog(chromium, demo):
    server, state = demo
    page = _open(chromium, f"{server.url}/flag_detail?env=production&flag=ab_testing")
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    # every guard passes for ab_testing in the demo (no dependencies, steady traffic)
    assert "❌" not in grid.cells(page, "propagation", timeout_s=60)

    page.get_by_role("button", name="Advance").click()
    expect(
        page.get_by_role("dialog").get_by_text("ab_testing: rollout 25 % → rollout 50 %")
    ).to_be_visible(timeout=45_000)
    _screenshot(page, "flag-detail-dialog.png")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    _act(page, "Advance", "ab_testing", "steady for an hour")
    expect(page.get_by_text("Applied: ab_testing: rollout 25 % → rollout 50 %")).to_be_visible(
        timeout=45_000
    )
    assert (
        load_config(state / "feature_flags.yaml", "production").flags["ab_testing"].percentage == 50
    )
    audit = AuditLog(open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl")
    (entry,) = audit.entries(flag="ab_testing")
    assert (entry.actor, entry.outcome, entry.to_percentage) == (
        "local-operator",
        Outcome.APPLIED,
        50,
    )
    assert entry.reason == "steady for an hour"
    expect(page.get_by_role("link", name=f"Audit record {entry.id}")).to_be_visible()

    _act(page, "Roll back", "ab_testing", "p99 rose after 50 %")
    expect(page.get_by_text("Applied: ab_testing: rollout 50 % → rollout 25 %")).to_be_visible(
        timeout=45_000
    )
    assert (
        load_config(state / "feature_flags.yaml", "production").flags["ab_testing"].percentage == 25
    )
    assert [e.outcome for e in audit.entries(flag="ab_testing")] == [
        Outcome.APPLIED,
        Outcome.APPLIED,
    ]
    _no_error_element(page)
    page.reload()
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    # the charts, with the two changes drawn on them
    first_chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(first_chart.locator(".annotation-text")).to_have_count(2, timeout=45_000)
    _drawn(page)
    _no_error_element(page)
    _screenshot(page, "flag-detail.png")
    # the page scrolls inside Streamlit's container: bring the charts into view
    page.get_by_text("Metrics over time").scroll_into_view_if_needed()
    _drawn(page)
    _no_error_element(page)
    page.screenshot(path=SCREENSHOTS / "flag-detail-charts.png")

    page.goto(f"{server.url}/audit?id={entry.id}")
    expect(page.get_by_text(f"Record {entry.id}: advance ab_testing")).to_be_visible(timeout=45_000)
    rows = grid.cells(page, "steady for an hour")
    assert "p99 rose after 50 %" in rows and "local-operator" in rows
    _no_error_element(page)
    _screenshot(page, "audit.png")
    page.close()


def test_the_demo_runs_the_autopilot_on_two_seeded_plans(demo):
    """`demo` seeds a ramping plan and one whose treatment the simulator makes fail, and
    starts the autopilot, which ticks every few seconds."""
    _, state = demo
    store = PlanStore(open_database(f"sqlite:///{state / 'metrics.db'}"))
    deadline = time.monotonic() + 90  # a bound on a hang, not a timing assertion
    beat = store.heartbeat("autopilot")
    while (beat is None or beat.ticks < 1) and time.monotonic() < deadline:
        time.sleep(0.5)
        beat = store.heartbeat("autopilot")
    assert beat is not None and beat.ticks >= 1 and beat.interval_seconds == 5
    assert sorted(p.flag for p in store.plans("production")) == sorted(DEMO_PLANS)


def test_a_viewer_sees_no_action_buttons(chromium, tmp_path):
    """Without demo mode and without sign-in the dashboard is read-only."""
    copy_bundled_config(tmp_path)
    port = free_port()
    server = start(
        streamlit_command(port), {"ROLLOUT_STATE_DIR": str(tmp_path)}, port, tmp_path / "s.log"
    )
    try:
        page = _open(chromium, f"{server.url}/flag_detail?env=production&flag=ab_testing")
        expect(page.get_by_text("Actions need the operator role.")).to_be_visible(timeout=45_000)
        expect(page.get_by_role("button", name="Advance")).to_have_count(0)
        expect(page.get_by_role("button", name="Kill")).to_have_count(0)
        expect(page.get_by_text("Read-only viewer")).to_be_visible()
        page.goto(server.url)
        expect(page.get_by_text("Rollout overview")).to_be_visible(timeout=45_000)
        expect(page.get_by_role("button", name="Emergency rollback")).to_have_count(0)
        page.close()
    finally:
        server.stop()
