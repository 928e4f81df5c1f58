"""Hostile and stale links on every page: no exception, a note naming what was ignored,
never another flag than the one named, and the Emergency rollback button always there
for the demo's local operator (issue 8 §2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.url_dashboard import choose, combobox, in_url, no_exception, start_dashboard
from tests.support.servers import Process

pytestmark = pytest.mark.browser

LONG = "z" * 5000
INJECTION = 'x"}) or vector(1)'
SCRIPT = "<script>alert(1)</script>"
IGNORED = "Ignored from the link: "


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    server = start_dashboard(tmp_path_factory.mktemp("state"))
    yield server
    server.stop()


@pytest.fixture
def page(page_refusing_dialogs: Page) -> Page:
    return page_refusing_dialogs


def _open(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60_000)
    no_exception(page)


def _noted(page: Page, *notes: str) -> None:
    for note in notes:
        expect(page.get_by_text(IGNORED + note).first).to_be_visible()


OVERVIEW_LINKS = [
    ("phase=7", ["phase=7: not one of 1, 2, 3, 4, 5, 6"]),
    (
        f"phase=0,99,abc,2&env=nonexistent&state={INJECTION}&health={SCRIPT}",
        [
            "phase=0: not one of",
            "phase=99: not one of",
            "phase=abc: not one of",
            "env=nonexistent: not one of production, staging",
            f"state={INJECTION}: not one of",
            f"health={SCRIPT}: not one of",
        ],
    ),
    (f"env=a&env=b&q={SCRIPT}", ["env=a: not one of", "env=b: not one of"]),
    ("env=staging&env=b&phase=", ["env=b: not offered"]),
    (
        f"q={LONG}&env={LONG}",
        ["q: cut to its first 200 of 5000 characters", f"env={'z' * 40}… (5000 characters)"],
    ),
]


@pytest.mark.parametrize(
    ("query", "notes"), OVERVIEW_LINKS, ids=[q[:20] for q, _ in OVERVIEW_LINKS]
)
def test_the_overview_survives_every_link_and_keeps_the_kill_switch(
    page: Page, dashboard: Process, query: str, notes: list[str]
):
    _open(page, f"{dashboard.url}/?{query}", "🚦 Rollout overview")
    expect(page.get_by_role("button", name="🚨 Emergency rollback")).to_be_visible()
    _noted(page, *notes)
    expect(page.get_by_text("Source:")).to_be_visible()  # the table's panel drew
    no_exception(page)


def test_a_links_note_goes_once_the_person_picks_another_value(page: Page, dashboard: Process):
    """The note names what the link asked for; after two edits of that picker it would
    only describe the past, so it is gone, and it does not come back."""
    _open(page, f"{dashboard.url}/?env={SCRIPT}", "🚦 Rollout overview")
    _noted(page, "env=")
    choose(page, "Environment", "staging")
    in_url(page, "env", "staging")
    expect(page.get_by_text(IGNORED)).to_have_count(0)
    choose(page, "Environment", "production")
    in_url(page, "env", "production")
    expect(page.get_by_text(IGNORED)).to_have_count(0)
    expect(page.get_by_role("button", name="🚨 Emergency rollback")).to_be_visible()
    no_exception(page)


def test_an_unknown_flag_is_named_never_replaced(page: Page, dashboard: Process):
    for flag in ["nope", SCRIPT, INJECTION]:
        _open(page, f"{dashboard.url}/flag_detail?flag={flag}", "🔎 Flag detail")
        _noted(page, f"no flag {flag} in production")
        expect(combobox(page, "Flag")).to_have_value("")
        for other in ["ab_testing", "canary_checkout", "phase1_cache", "phase2_search"]:
            expect(page.get_by_role("heading", name=other)).to_have_count(0)
        expect(page.get_by_role("button", name="⏫ Advance")).to_have_count(0)
        expect(page.get_by_role("button", name="🛑 Kill")).to_have_count(0)
        in_url(page, "flag", None)
    # the picker is offered and works: choosing a flag shows it
    combobox(page, "Flag").click()
    page.get_by_role("option", name="canary_checkout", exact=True).click()
    expect(page.get_by_role("heading", name="canary_checkout", exact=True)).to_be_visible()
    in_url(page, "flag", "canary_checkout")


FLAG_DETAIL_LINKS = [
    (
        "env=nonexistent&flag=ab_testing&range=99d&refresh=forever",
        [
            "env=nonexistent: not one of",
            "range=99d: not one of 15m, 1h, 6h, 24h, 7d, 30d",
            "refresh=forever: not one of",
        ],
    ),
    (
        f"flag=nope&flag=ab_testing&range={LONG}",
        ["flag=nope: not offered", f"range={'z' * 40}… (5000 characters)"],
    ),
]


@pytest.mark.parametrize(
    ("query", "notes"), FLAG_DETAIL_LINKS, ids=[q[:24] for q, _ in FLAG_DETAIL_LINKS]
)
def test_flag_detail_shows_the_named_flag_and_what_was_ignored(
    page: Page, dashboard: Process, query: str, notes: list[str]
):
    _open(page, f"{dashboard.url}/flag_detail?{query}", "🔎 Flag detail")
    expect(page.get_by_role("heading", name="ab_testing", exact=True)).to_be_visible()
    _noted(page, *notes)
    no_exception(page)


OTHER_PAGES = [
    (
        "canary",
        "🐤 Canary",
        f"window=5y&env={INJECTION}",
        ["window=5y: not one of 15m, 30m, 1h, 3h", f"env={INJECTION}: not one of"],
    ),
    ("phases", "🧭 Technical-debt phases", f"env={SCRIPT}&env=b", [f"env={SCRIPT}: not one of"]),
    (
        "audit",
        "📜 Audit log",
        "outcome=hacked,applied&actor=a&actor=b",
        ["outcome=hacked: not one of", "actor=a: given more than once"],
    ),
    ("audit", "📜 Audit log", f"flag={LONG}&id=nope", ["flag: cut to its first 200"]),
]


@pytest.mark.parametrize(
    ("path", "heading", "query", "notes"),
    OTHER_PAGES,
    ids=[f"{p}-{q[:16]}" for p, _, q, _ in OTHER_PAGES],
)
def test_other_pages_survive_every_link(
    page: Page, dashboard: Process, path: str, heading: str, query: str, notes: list[str]
):
    _open(page, f"{dashboard.url}/{path}?{query}", heading)
    _noted(page, *notes)
    no_exception(page)
