"""A demo-mode dashboard (local operator, no Prometheus) on a small flag config with two
environments, for the browser tests of links and widgets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Locator, Page, expect

from app.audit import Outcome
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import open_runtime
from app.serve import streamlit_command
from app.settings import load_settings
from tests.support.grid import as_displayed
from tests.support.servers import Process, free_port, start

FLAGS = """
version: "3"
flags:
  phase1_cache:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 1}
  phase2_search:
    state: enabled
    metadata: {phase: 2}
  canary_checkout:
    state: rollout
    rollout: {percentage: 5}
    metadata: {phase: 3}
  ab_testing:
    state: disabled
    metadata: {phase: 4}
"""
STAGING = """
flags:
  phase1_cache:
    rollout: {percentage: 33}
"""
PRODUCTION = "flags: {}\n"
ALL_FLAGS = {"phase1_cache", "phase2_search", "canary_checkout", "ab_testing"}


def start_dashboard(state: Path, *, audit: bool = False) -> Process:
    """The dashboard in demo mode on `state` (flag files written here); with `audit`,
    alice has killed canary_checkout, bob has rolled phase2_search back and carol's
    advance of phase1_cache was refused, in staging."""
    (state / "feature_flags.yaml").write_text(FLAGS)
    (state / "feature_flags_staging.yaml").write_text(STAGING)
    (state / "feature_flags_production.yaml").write_text(PRODUCTION)
    if audit:
        rt = open_runtime(load_settings(state_dir=state, demo=True, prometheus_url=None))
        for name, action, flag in [
            ("alice", Action.KILL, "canary_checkout"),
            ("bob", Action.ROLLBACK, "phase2_search"),
        ]:
            who = Identity(name, Role.OPERATOR, "cli")
            result = rt.execute(ActionRequest(action, "staging", "browser test", who, flag=flag))
            assert result.applied, result.error
        carol = Identity("carol", Role.OPERATOR, "cli")
        refused = rt.execute(
            ActionRequest(Action.ADVANCE, "staging", "no data yet", carol, flag="phase1_cache")
        )
        assert not refused.applied and refused.audit[-1].outcome is Outcome.REFUSED
        if rt.engine is not None:
            rt.engine.dispose()
    port, closed = free_port(), free_port()
    env = {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_DEMO": "true",
        "ROLLOUT_PROMETHEUS_URL": f"http://127.0.0.1:{closed}",
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS": "1",
        "ROLLOUT_REFRESH_SECONDS": "600",
    }
    return start(streamlit_command(port), env, port, state / "streamlit.log")


def in_url(page: Page, name: str, value: str | None) -> None:
    """The page's link comes to have `name=value` (None: no `name` at all)."""
    wait_until(
        lambda: parse_qs(urlparse(page.url).query).get(name) == (value and [value]),
        page,
        f"{name}={value} in {page.url}",
    )


def wait_until(check: Callable[[], bool], page: Page, what: str, timeout_s: float = 30) -> None:
    """Poll `check` while the page works, until it holds (fails naming `what`)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not seen within {timeout_s} s: {what}"
        page.wait_for_timeout(200)


def grid_texts(page: Page) -> list[str]:
    """Every grid cell as the person reads it (a flag link reads as its key)."""
    cells = page.locator('[role="gridcell"]').all_inner_texts()
    return [as_displayed(t.strip()) for t in cells]


def flags_shown(page: Page, expected: set[str]) -> None:
    """The overview's table comes to show exactly the flags `expected` (empty: none)."""
    if not expected:
        expect(page.get_by_text("No flag matches these filters.")).to_be_visible()
        return
    wait_until(
        lambda: set(grid_texts(page)) & ALL_FLAGS == expected,
        page,
        f"flags {sorted(expected)}",
    )


def combobox(page: Page, label: str) -> Locator:
    """The text field of the select box or multiselect `label` (a select box's value is
    the field's value)."""
    return page.get_by_role("combobox", name=label, exact=True)


def choose(page: Page, label: str, option: str) -> None:
    """Open the select box or multiselect `label` and click `option`."""
    combobox(page, label).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def unpick(page: Page, option: str) -> None:
    """Remove `option` from the multiselect that shows it."""
    page.get_by_role("button", name=f"Remove {option}", exact=True).click()


def picked(page: Page, label: str, options: list[str]) -> None:
    """The multiselect `label` shows exactly `options` as tags."""
    box = page.locator('[data-testid="stMultiSelect"]').filter(has=combobox(page, label))
    expect(box.locator("[data-tag]")).to_have_count(len(options))
    for option in options:
        expect(box.get_by_label(option, exact=True)).to_have_count(1)


def no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
