"""`serve` on a fresh state directory: the dashboard says which file it looked for and
which settings point elsewhere, then what is wrong with an invalid file, and works as
soon as the file is right, without a restart (issue 8 §2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.serve import streamlit_command
from tests.browser.url_dashboard import FLAGS, no_exception
from tests.support.servers import Process, free_port, start

pytestmark = pytest.mark.browser

INVALID = """version: "1"
flags:
  broken:
    state: sideways
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """The dashboard as `serve` starts it (no demo) on an empty state directory."""
    state = tmp_path_factory.mktemp("fresh")
    port = free_port()
    env = {"ROLLOUT_STATE_DIR": str(state)}
    server = start(streamlit_command(port), env, port, state.parent / f"{state.name}.log")
    yield server, state
    server.stop()


def _setup_page(page: Page) -> None:
    expect(
        page.get_by_role("heading", name="🚦 Rollout Dashboard needs a flag configuration")
    ).to_be_visible(timeout=60_000)
    no_exception(page)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_a_first_deployment_is_told_what_to_do(chromium: Browser, fresh):
    server, state = fresh
    flags_file = state / "feature_flags.yaml"
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    for path in ["/", "/flag_detail?flag=x", "/audit"]:
        page.goto(server.url + path)
        _setup_page(page)
        expect(page.get_by_text(f"No flag configuration file at {flags_file}")).to_be_visible()
        expect(page.get_by_text("ROLLOUT_FLAGS_FILE").first).to_be_visible()
        expect(page.get_by_text(f"ROLLOUT_STATE_DIR (now {state})")).to_be_visible()

    flags_file.write_text(INVALID)
    page.reload()
    _setup_page(page)
    expect(page.get_by_text(f"The flag configuration {flags_file}")).to_be_visible()
    code = page.locator('[data-testid="stCode"]')
    expect(code).to_contain_text(f"{flags_file}:4: broken:")
    expect(code).to_contain_text("sideways")

    flags_file.write_text(FLAGS)
    page.goto(server.url)
    expect(page.get_by_role("heading", name="🚦 Rollout overview")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("needs a flag configuration")).to_have_count(0)
    no_exception(page)
    page.close()
