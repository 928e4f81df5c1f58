"""A real headless Chromium (Debian's), driven by Playwright: one per test session,
shared by every test directory (a second `sync_playwright` in one process fails)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Fails (never skips) without /usr/bin/chromium: `make test` installs it."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_refusing_dialogs(chromium: Browser) -> Iterator[Page]:
    """A new page that fails its test if anything in it opens a dialog: a hostile link
    that ran script would (`alert(1)`)."""
    page = chromium.new_page(viewport={"width": 1600, "height": 1000})
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    yield page
    assert dialogs == [], "a link ran script in the page"
    page.close()
