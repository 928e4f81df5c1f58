"""Every input widget of every page, edited four times in a row: each edit sticks in the
widget, in the link and in what the page shows (issue 8 §1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.url_dashboard import (
    choose,
    combobox,
    flags_shown,
    grid_texts,
    in_url,
    no_exception,
    picked,
    start_dashboard,
    unpick,
    wait_until,
)
from tests.support.servers import Process

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    server = start_dashboard(tmp_path_factory.mktemp("state"), audit=True)
    yield server
    server.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    page = chromium.new_page(viewport={"width": 1600, "height": 1000})
    yield page
    no_exception(page)
    page.close()


def _overview(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_role("button", name="🚨 Emergency rollback")).to_be_visible(timeout=60_000)


def test_search_keeps_every_edit(page: Page, dashboard: Process):
    _overview(page, dashboard.url)
    box = page.get_by_role("textbox", name="Search")
    for text, flag in [
        ("phase1", "phase1_cache"),
        ("phase2", "phase2_search"),
        ("canary", "canary_checkout"),
        ("ab_testing", "ab_testing"),
    ]:
        box.fill(text)
        box.press("Enter")
        flags_shown(page, {flag})
        expect(box).to_have_value(text)
        in_url(page, "q", text)


def test_state_filter_keeps_every_edit(page: Page, dashboard: Process):
    _overview(page, dashboard.url)
    choose(page, "State", "rollout")
    flags_shown(page, {"phase1_cache", "canary_checkout"})
    picked(page, "State", ["rollout"])
    in_url(page, "state", "rollout")
    choose(page, "State", "enabled")
    flags_shown(page, {"phase1_cache", "canary_checkout", "phase2_search"})
    picked(page, "State", ["rollout", "enabled"])
    in_url(page, "state", "rollout,enabled")
    unpick(page, "rollout")
    flags_shown(page, {"phase2_search"})
    picked(page, "State", ["enabled"])
    in_url(page, "state", "enabled")
    choose(page, "State", "disabled")
    flags_shown(page, {"phase2_search", "ab_testing"})
    picked(page, "State", ["enabled", "disabled"])
    in_url(page, "state", "enabled,disabled")


def test_phase_filter_keeps_every_edit(page: Page, dashboard: Process):
    _overview(page, dashboard.url)
    choose(page, "Phase", "1")
    flags_shown(page, {"phase1_cache"})
    in_url(page, "phase", "1")
    choose(page, "Phase", "3")
    flags_shown(page, {"phase1_cache", "canary_checkout"})
    picked(page, "Phase", ["1", "3"])
    in_url(page, "phase", "1,3")
    unpick(page, "1")
    flags_shown(page, {"canary_checkout"})
    in_url(page, "phase", "3")
    choose(page, "Phase", "4")
    flags_shown(page, {"canary_checkout", "ab_testing"})
    picked(page, "Phase", ["3", "4"])
    in_url(page, "phase", "3,4")


def test_health_filter_keeps_every_edit(page: Page, dashboard: Process):
    """No metrics at all: every flag has no data."""
    _overview(page, dashboard.url)
    everything = {"phase1_cache", "phase2_search", "canary_checkout", "ab_testing"}
    choose(page, "Health", "no_data")
    flags_shown(page, everything)
    in_url(page, "health", "no_data")
    choose(page, "Health", "healthy")
    flags_shown(page, everything)
    picked(page, "Health", ["no_data", "healthy"])
    in_url(page, "health", "no_data,healthy")
    unpick(page, "no_data")
    flags_shown(page, set())
    picked(page, "Health", ["healthy"])
    in_url(page, "health", "healthy")
    choose(page, "Health", "no_data")
    flags_shown(page, everything)
    in_url(page, "health", "healthy,no_data")


def _rollout_cells(page: Page, percent: str) -> None:
    """phase1_cache is at 10 % in production and 33 % in staging."""
    other = {"10": "33", "33": "10"}[percent]
    wait_until(
        lambda: percent in grid_texts(page) and other not in grid_texts(page),
        page,
        f"rollout {percent} % in the table",
    )


def test_environment_picker_on_the_overview_keeps_every_edit(page: Page, dashboard: Process):
    _overview(page, f"{dashboard.url}/?q=phase1")
    _rollout_cells(page, "10")
    for environment, percent in [
        ("staging", "33"),
        ("production", "10"),
        ("staging", "33"),
        ("production", "10"),
    ]:
        choose(page, "Environment", environment)
        _rollout_cells(page, percent)
        expect(combobox(page, "Environment")).to_have_value(environment)
        in_url(page, "env", environment)
        in_url(page, "q", "phase1")


def _flag_detail(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="🔎 Flag detail")).to_be_visible(timeout=60_000)


def test_flag_picker_follows_every_choice(page: Page, dashboard: Process):
    _flag_detail(page, f"{dashboard.url}/flag_detail?flag=ab_testing")
    expect(page.get_by_role("heading", name="ab_testing", exact=True)).to_be_visible()
    for flag in ["canary_checkout", "phase1_cache", "phase2_search", "ab_testing"]:
        choose(page, "Flag", flag)
        expect(page.get_by_role("heading", name=flag, exact=True)).to_be_visible()
        expect(combobox(page, "Flag")).to_have_value(flag)
        in_url(page, "flag", flag)


def test_environment_picker_on_flag_detail_keeps_the_flag(page: Page, dashboard: Process):
    _flag_detail(page, f"{dashboard.url}/flag_detail?flag=phase1_cache")
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.get_by_text("Rollout", exact=True)
    )
    expect(metric).to_contain_text("10 %")
    for environment, percent in [
        ("staging", "33 %"),
        ("production", "10 %"),
        ("staging", "33 %"),
        ("production", "10 %"),
    ]:
        choose(page, "Environment", environment)
        expect(metric).to_contain_text(percent)
        expect(page.get_by_role("heading", name="phase1_cache", exact=True)).to_be_visible()
        in_url(page, "env", environment)
        in_url(page, "flag", "phase1_cache")


def test_range_and_refresh_keep_every_edit(page: Page, dashboard: Process):
    _flag_detail(page, f"{dashboard.url}/flag_detail?flag=ab_testing")
    radio = page.locator('[data-testid="stRadio"]').filter(has_text="Time range")
    for name in ["15m", "6h", "24h", "1h"]:
        radio.get_by_text(name, exact=True).click()
        expect(radio.get_by_role("radio", name=name, exact=True)).to_be_checked()
        in_url(page, "range", name)
        expect(page.get_by_text("Source:").last).to_be_visible()
    for name in ["off", "10 s", "5 min", "30 s"]:
        choose(page, "Refresh", name)
        expect(combobox(page, "Refresh")).to_have_value(name)
        in_url(page, "refresh", name)
    in_url(page, "range", "1h")
    expect(page.get_by_role("heading", name="ab_testing", exact=True)).to_be_visible()


def test_canary_pickers_keep_every_edit(page: Page, dashboard: Process):
    page.goto(f"{dashboard.url}/canary")
    expect(page.get_by_role("heading", name="🐤 Canary")).to_be_visible(timeout=60_000)
    for window in ["30m", "3h", "1h", "15m"]:
        choose(page, "Window", window)
        expect(combobox(page, "Window")).to_have_value(window)
        in_url(page, "window", window)
        expect(page.get_by_text(f"window {window}")).to_be_visible()
    for environment in ["staging", "production", "staging", "production"]:
        choose(page, "Environment", environment)
        expect(combobox(page, "Environment")).to_have_value(environment)
        in_url(page, "env", environment)
        in_url(page, "window", "15m")


def test_phases_environment_keeps_every_edit(page: Page, dashboard: Process):
    page.goto(f"{dashboard.url}/phases")
    expect(page.get_by_text("applied change(s) in production")).to_be_visible(timeout=60_000)
    for environment in ["staging", "production", "staging", "production"]:
        choose(page, "Environment", environment)
        expect(page.get_by_text(f"applied change(s) in {environment}")).to_be_visible()
        expect(combobox(page, "Environment")).to_have_value(environment)
        in_url(page, "env", environment)


def _records(page: Page, count: int) -> None:
    expect(page.get_by_text(f"{count} record(s), newest first")).to_be_visible()


def test_audit_filters_keep_every_edit(page: Page, dashboard: Process):
    page.goto(f"{dashboard.url}/audit")
    expect(page.get_by_role("heading", name="📜 Audit log")).to_be_visible(timeout=60_000)
    _records(page, 3)
    flag = page.get_by_role("textbox", name="Flag")
    actor = page.get_by_role("textbox", name="Actor")
    for text, count in [("canary_checkout", 1), ("phase1_cache", 1), ("nothing", 0), ("", 3)]:
        flag.fill(text)
        flag.press("Enter")
        _records(page, count)
        expect(flag).to_have_value(text)
        in_url(page, "flag", text or None)
    for text, count in [("ali", 1), ("BOB", 1), ("c", 2), ("", 3)]:
        actor.fill(text)
        actor.press("Enter")
        _records(page, count)
        expect(actor).to_have_value(text)
        in_url(page, "actor", text or None)
    choose(page, "Outcome", "refused")
    _records(page, 1)
    in_url(page, "outcome", "refused")
    choose(page, "Outcome", "applied")
    _records(page, 3)
    in_url(page, "outcome", "refused,applied")
    unpick(page, "refused")
    _records(page, 2)
    in_url(page, "outcome", "applied")
    unpick(page, "applied")
    _records(page, 3)
    in_url(page, "outcome", None)
