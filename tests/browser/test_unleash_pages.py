"""The dashboard on a real Unleash, used as a person uses it: a rollback from the flag
page, someone changing the flag in Unleash meanwhile, a stale tab told who changed it,
the overview naming the change made in Unleash, a flag it can only show, and Unleash
going down under an open page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.audit import AuditLog, Outcome
from app.demo.unleash_server import LocalUnleash, start_unleash
from app.metrics_db.database import open_database
from app.serve import streamlit_command
from app.unleash.api import UnleashApi
from tests.conftest import fresh_postgres_database
from tests.support.grid import cells
from tests.support.servers import Process, free_port, start
from tests.support.unleash import SOMEONE_ELSE, UnleashSeed

pytestmark = [pytest.mark.browser, pytest.mark.unleash]
VIEWPORT = {"width": 1500, "height": 1000}


def _dashboard(server: LocalUnleash, state: Path) -> Process:
    port = free_port()
    env = {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_DEMO": "true",
        "ROLLOUT_TYPED_CONFIRMATION_ENVIRONMENTS": "[]",
        "ROLLOUT_FLAG_BACKEND": "unleash",
        "ROLLOUT_UNLEASH_URL": server.url,
        "ROLLOUT_UNLEASH_TOKEN": server.admin_token,
        "ROLLOUT_UNLEASH_TIMEOUT_SECONDS": "2",
        "ROLLOUT_REFRESH_SECONDS": "2",
    }
    return start(streamlit_command(port), env, port, state / "streamlit.log")


@pytest.fixture(scope="module")
def dashboard(
    unleash_server: LocalUnleash, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, Path]]:
    state = tmp_path_factory.mktemp("unleash-pages")
    process = _dashboard(unleash_server, state)
    yield process, state
    process.stop()


def _flag_page(chromium: Browser, server: Process, flag: str) -> Page:
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/flag_detail?env=production&flag={flag}&refresh=off")
    expect(page.get_by_role("heading", name=flag)).to_be_visible(timeout=45_000)
    return page


def _no_error(page: Page, *secrets: str) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    for secret in secrets:
        assert secret not in page.content()


def _confirm(page: Page, reason: str, button: str) -> None:
    dialog = page.get_by_role("dialog")
    box = dialog.get_by_label("Reason")
    box.fill(reason)
    box.press("Tab")
    dialog.get_by_role("button", name=f"Confirm: {button}").click()


def test_acting_on_unleash_while_someone_changes_it_there(
    chromium: Browser, dashboard: tuple[Process, Path], unleash: UnleashSeed
) -> None:
    server, state = dashboard
    unleash.create("checkout", rollout=25)
    unleash.create(
        "beta_users",
        rollout=100,
        constraints=[{"contextName": "userId", "operator": "IN", "values": ["u1"]}],
    )
    token = unleash.server.admin_token

    # Two tabs on the same flag; the second rolls back 25 → 10 %.
    first = _flag_page(chromium, server, "checkout")
    expect(first.get_by_role("button", name="Roll back to 10 %")).to_be_visible()
    second = _flag_page(chromium, server, "checkout")
    second.get_by_role("button", name="Roll back to 10 %").click()
    expect(
        second.get_by_role("dialog").get_by_text("Roll back checkout in production: 25 % → 10 %")
    ).to_be_visible(timeout=30_000)
    _confirm(second, "errors up after the deploy", "⏬ Roll back to 10 %")
    expect(second.get_by_text("Applied: checkout: rollout 25 % → rollout 10 %")).to_be_visible(
        timeout=30_000
    )
    assert [s["parameters"]["rollout"] for s in unleash.strategies("checkout")] == ["10"]
    (entry,) = AuditLog(
        open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl"
    ).entries(flag="checkout")
    assert entry.outcome is Outcome.APPLIED
    assert "Unleash event #" in entry.detail and token not in entry.detail

    # Meanwhile someone sets it to 50 % in Unleash itself.
    olga = UnleashApi(unleash.server.url, unleash.server.other_tokens[SOMEONE_ELSE])
    (strategy,) = unleash.strategies("checkout")
    olga.patch(
        f"{unleash.features_path('checkout')}/environments/production/strategies/{strategy['id']}",
        [{"op": "replace", "path": "/parameters/rollout", "value": "50"}],
    )

    # The first tab, still showing 25 %, is told the flag moved and by whom.
    first.get_by_role("button", name="Roll back to 10 %").click()
    dialog = first.get_by_role("dialog")
    expect(dialog.get_by_text("Roll back checkout in production: 50 % → 25 %")).to_be_visible(
        timeout=30_000
    )
    expect(dialog.get_by_text("Changed since you looked", exact=False)).to_contain_text(
        f"changed in Unleash by {SOMEONE_ELSE}: rollout 10 % → 50 %"
    )
    first.keyboard.press("Escape")
    _no_error(first, token)

    # The overview names the change made in Unleash, and the flag it can only show.
    # wide enough that the grid draws every column, the last change included
    overview = chromium.new_page(viewport={"width": 3000, "height": 1000})
    overview.goto(f"{server.url}/?env=production")
    shown = cells(overview, "checkout")
    width = len(shown) // 2  # two flags, one row each
    by_flag = {line[1]: line for line in (shown[:width], shown[width:])}
    assert by_flag["checkout"][-1].endswith(  # the last column: Last change
        f"changed in Unleash by {SOMEONE_ELSE}: rollout 10 % → 50 %"
    ), by_flag["checkout"]
    beta = by_flag["beta_users"]
    assert "🔒 enabled" in beta and any(c.startswith("read-only: ") for c in beta), beta
    _no_error(overview, token)

    # The flag's own history and the phases page list it too, labelled as made in Unleash.
    history = _flag_page(chromium, server, "checkout")
    expect(history.get_by_text("Made in Unleash itself", exact=False)).to_be_visible(timeout=30_000)
    expect(
        history.get_by_text(f"changed in Unleash by {SOMEONE_ELSE}: rollout 10 % → 50 %")
    ).to_be_visible()
    phases = chromium.new_page(viewport=VIEWPORT)
    phases.goto(f"{server.url}/phases?env=production")
    expect(phases.get_by_role("heading", name="Changes made in Unleash itself")).to_be_visible(
        timeout=45_000
    )
    _no_error(phases, token)

    # Its flag page says why and offers no button that would change it.
    locked = _flag_page(chromium, server, "beta_users")
    expect(locked.get_by_text("Read-only here: ", exact=False)).to_contain_text("constraints")
    expect(locked.get_by_role("button", name="Kill", exact=False)).to_have_count(0)
    _no_error(locked, token)


def test_unleash_going_down_under_an_open_page(chromium: Browser, tmp_path: Path) -> None:
    with fresh_postgres_database("unleash_down") as url:
        server = start_unleash(
            url.replace("postgresql+psycopg://", "postgres://"), tmp_path / "u.log"
        )
        dashboard = None
        try:
            UnleashApi(server.url, server.admin_token).post(
                "/api/admin/projects/default/features", {"name": "checkout", "type": "release"}
            )
            dashboard = _dashboard(server, tmp_path)
            page = chromium.new_page(viewport=VIEWPORT)
            page.goto(f"{dashboard.url}/?env=production")
            expect(page.get_by_text("Rollout overview")).to_be_visible(timeout=45_000)
            server.stop()

            page.reload()
            expect(page.get_by_text("Flags unavailable", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Unleash unavailable", exact=False).first).to_be_visible()
            expect(page.get_by_text("The Audit page still works", exact=False)).to_be_visible()
            _no_error(page, server.admin_token)
            page.goto(f"{dashboard.url}/audit")
            expect(page.get_by_role("heading", name="Audit", exact=False).first).to_be_visible(
                timeout=30_000
            )
            _no_error(page, server.admin_token)
        finally:
            if dashboard is not None:
                dashboard.stop()
            server.stop()
