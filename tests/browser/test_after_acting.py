"""What the pages say right after a person acts (issue 24), in a real Chromium on the demo:
the canary page after the canary flag is killed, and no Kill offered on a killed flag.
docs/screenshots/canary-after-kill.png is taken here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.audit import AuditLog, Outcome
from app.flags.loader import load_config
from app.metrics_db.database import open_database
from tests.support import grid
from tests.support.servers import Process, free_port, python_command, start

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1440, "height": 1000}
CANARY_FLAG = "canary_deployment"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """`rollout-dashboard demo` of its own: these tests kill flags the other demo tests use."""
    state = tmp_path_factory.mktemp("demo") / "state"
    port = free_port()
    env = {"ROLLOUT_SIMULATOR_PORT": str(free_port())}
    command = python_command(
        "-m", "app.cli", "demo", "--state-dir", str(state), "--port", str(port)
    )
    server = start(command, env, port, state.parent / "demo.log")
    yield server, state
    server.stop()


def _drawn(page: Page) -> None:
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=45_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    for index in range(charts.count()):
        expect(charts.nth(index).locator(".main-svg").first).to_be_attached(timeout=45_000)


def _no_error_element(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_the_canary_page_after_the_canary_flag_is_killed(chromium: Browser, demo):
    server, state = demo
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/canary")
    # the demo's simulated canary fails within a minute or two of starting
    expect(page.get_by_text("Canary verdict: FAIL")).to_be_visible(timeout=180_000)
    expect(page.get_by_text("Canary flag killed at")).to_have_count(0)

    page.get_by_role("button", name="Kill (0 %, disabled)").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Exact change")).to_be_visible(timeout=45_000)
    expect(dialog.get_by_label("Reason")).to_be_editable(timeout=90_000)  # a busy machine
    dialog.get_by_label("Reason").fill("canary fails: p99 and errors up")
    dialog.get_by_label("Type").fill(CANARY_FLAG)
    dialog.get_by_label("Type").press("Tab")
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_enabled(timeout=10_000)
    confirm.click()
    expect(page.get_by_text(f"Applied: {CANARY_FLAG}: rollout")).to_be_visible(timeout=45_000)

    config = load_config(state / "feature_flags.yaml", "production")
    assert config.flags[CANARY_FLAG].percentage == 0
    audit = AuditLog(open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl")
    kill = audit.latest_applied("production", CANARY_FLAG)
    assert kill is not None and kill.outcome is Outcome.APPLIED and kill.action == "kill"

    # the verdict is explained in the present: when the flag went off, what it covers
    note = page.get_by_text(f"Canary flag killed at {kill.at:%Y-%m-%d %H:%M} UTC by local-operator")
    expect(note).to_be_visible(timeout=45_000)
    expect(page.get_by_text("the verdict covers the window before the kill")).to_be_visible()
    # a killed flag is not offered another kill; the button says why
    expect(page.get_by_role("button", name="🛑 Kill", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Kill (0 %, disabled)")).to_have_count(0)
    expect(page.get_by_text("Kill: already disabled (0 %): nothing to kill")).to_be_visible()
    # the p99 chart's axis is in ms, like its tolerance line
    expect(page.get_by_text("p99 (ms)")).to_be_visible()

    page.reload()  # still said after a reload, not only right after the click
    expect(note).to_be_visible(timeout=45_000)
    assert "p99 latency" in grid.cells(page, "p99 latency", timeout_s=60)  # tables drawn
    _drawn(page)
    _no_error_element(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "canary-after-kill.png", full_page=True)

    page.goto(f"{server.url}/flag_detail?env=production&flag={CANARY_FLAG}")
    expect(page.get_by_role("button", name="🛑 Kill", exact=True)).to_be_disabled(timeout=45_000)
    _no_error_element(page)
    page.close()


#: which of `texts` the page shows cut: the deepest element holding exactly that text, or one of
#: its four nearest ancestors, clips what it holds (its content is wider than its box)
_CUT = """(texts) => texts.map((text) => {
  const holder = [...document.querySelectorAll('main *')].find(
    (e) => e.textContent.trim() === text
      && ![...e.children].some((c) => c.textContent.trim() === text));
  if (!holder) return [text, 'missing'];
  let node = holder;
  for (let depth = 0; node && depth < 5; depth += 1, node = node.parentElement) {
    const style = getComputedStyle(node);
    if (style.overflow !== 'visible' && node.scrollWidth > node.clientWidth + 1) {
      return [text, 'cut'];
    }
  }
  return [text, 'whole'];
})"""


def test_flag_detail_at_1024_px_cuts_no_label(chromium: Browser, demo):
    server, _ = demo
    page = chromium.new_page(viewport={"width": 1024, "height": 800})
    page.goto(f"{server.url}/flag_detail?env=production&flag=phase1_config_externalization")
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=90_000)
    _drawn(page)
    for label in ("⏫ Advance to 25 %", "⏬ Roll back to 5 %"):  # drawn before measuring
        expect(page.get_by_role("button", name=label)).to_be_visible(timeout=45_000)
    texts = ["percentage", "⏫ Advance to 25 %", "⏬ Roll back to 5 %"]
    seen = dict(page.evaluate(_CUT, texts))
    assert seen == dict.fromkeys(texts, "whole"), seen
    _no_error_element(page)
    page.close()
