"""A person opens bookmarked links carrying hostile values in a real Chromium: each page
names what it ignored, runs no script, shows no exception, and keeps working (the
Emergency rollback button is there, the search and the filters answer); nothing is
written. One dashboard serves the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.browser.url_dashboard import (
    flags_shown,
    no_exception,
    start_dashboard,
)
from tests.security.untouched import fingerprint, unchanged
from tests.support.servers import Process

pytestmark = pytest.mark.browser

SCRIPT = "<script>alert(1)</script>"
SQL = "x'; DROP TABLE audit_log; --"
IGNORED = "Ignored from the link: "


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    state = tmp_path_factory.mktemp("state")
    server = start_dashboard(state, audit=True)
    yield server, state
    server.stop()


@pytest.fixture
def page(page_refusing_dialogs: Page) -> Page:
    return page_refusing_dialogs


def _link(base: str, path: str, params: list[tuple[str, str]]) -> str:
    return f"{base}/{path}?" + "&".join(f"{k}={quote(v, safe='%')}" for k, v in params)


def test_a_hostile_bookmark_is_named_and_the_overview_keeps_working(page, served):
    server, state = served
    untouched = unchanged(state)
    page.goto(
        _link(
            server.url,
            "",
            [
                ("env", SCRIPT),
                ("phase", "abc"),
                ("phase", "-1"),
                ("phase", "99"),
                ("q", "z" * 10_000),
                ("health", "%ZZ%00"),  # percent-encoded garbage and a NUL, as typed
            ],
        )
    )
    expect(page.get_by_role("heading", name="🚦 Rollout overview")).to_be_visible(timeout=60_000)
    for note in [
        f"env={SCRIPT}: not one of production, staging",
        "phase=abc: not one of 1, 2, 3, 4, 5, 6",
        "phase=-1: not one of",
        "phase=99: not one of",
        "q: cut to its first 200 of 10000 characters",
        "health=%ZZ\\x00: not one of",
    ]:
        expect(page.get_by_text(IGNORED + note).first).to_be_visible()
    emergency = page.get_by_role("button", name="🚨 Emergency rollback")
    expect(emergency).to_be_visible()
    no_exception(page)

    # the page still works: a new search answers, and the kill switch opens its dialog
    search = page.get_by_role("textbox", name="Search")
    search.fill("phase1")
    search.press("Enter")
    flags_shown(page, {"phase1_cache"})
    emergency.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("dialog").get_by_text("Reason (required")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    no_exception(page)
    untouched()


def test_a_hostile_audit_link_is_named_and_its_filters_stay_literal(page, served):
    server, state = served
    untouched = unchanged(state)
    records = len(fingerprint(state).records)
    page.goto(_link(server.url, "audit", [("id", "²"), ("actor", SQL)]))
    expect(page.get_by_role("heading", name="📜 Audit log")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("No audit record #².")).to_be_visible()
    expect(page.get_by_text("0 record(s), newest first")).to_be_visible()
    no_exception(page)

    # clearing the filter shows every record again: the table survived the SQL
    actor = page.get_by_role("textbox", name="Actor")
    actor.fill("")
    actor.press("Enter")
    expect(page.get_by_text(f"{records} record(s), newest first")).to_be_visible()
    actor.fill("ALI")
    actor.press("Enter")
    expect(page.get_by_text("1 record(s), newest first")).to_be_visible()  # alice's kill
    no_exception(page)
    untouched()
