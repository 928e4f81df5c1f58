"""Signing in as a person does, in a real Chromium, at a real OpenID Connect provider
(tests/oidc): the role comes from `ROLLOUT_ROLES` by e-mail or `group:<name>`, the actions
follow it, signing out takes them away, and a provider that is down is named on the page
instead of a dead "Log in" button or Streamlit's bare "Authentication error" page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import grid
from tests.support.oidc import (
    VIEWPORT,
    OidcDashboard,
    OidcProvider,
    forge_sign_in,
    sign_in,
    sign_out,
    start_oidc_dashboard,
    start_provider,
)
from tests.support.servers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.oidc]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ROLES = {"alice@example.com": "operator", "group:admins": "admin"}
ACTIONS = ("Advance to 50 %", "Roll back to 10 %", "Kill (0 %, disabled)")


@pytest.fixture(scope="module")
def dashboard(
    oidc_provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcDashboard]:
    """alice is an operator by e-mail, carol an admin through her `admins` group; anyone
    else signed in is a viewer (the default role)."""
    server = start_oidc_dashboard(
        oidc_provider,
        tmp_path_factory.mktemp("sign-in"),
        env={"ROLLOUT_ROLES": json.dumps(ROLES)},
    )
    yield server
    server.stop()


def _flag_detail(page: Page, url: str) -> None:
    page.goto(f"{url}/flag_detail?env=production&flag=alpha&refresh=off")
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)


def _sees_the_actions(page: Page) -> None:
    for label in ACTIONS:
        expect(page.get_by_role("button", name=label)).to_be_visible()
    expect(page.get_by_text("Actions need the operator role.")).to_have_count(0)


def _sees_no_actions(page: Page) -> None:
    expect(page.get_by_text("Actions need the operator role.")).to_be_visible()
    for label in ACTIONS:
        expect(page.get_by_role("button", name=label)).to_have_count(0)


def _no_error(page: Page, server: OidcDashboard) -> None:
    """No error page, no traceback, and no secret in the page or the dashboard's log."""
    expect(page.get_by_text("Authentication error")).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    shown = page.content() + page.url + server.log_path.read_text()
    assert server.secrets and not [s for s in server.secrets if s in shown]


def test_an_operator_by_e_mail_gets_the_actions_until_signing_out(
    chromium: Browser, dashboard: OidcDashboard
):
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    _flag_detail(page, dashboard.url)
    expect(page.get_by_text("👁 Viewer — not signed in")).to_be_visible()
    _sees_no_actions(page)

    sign_in(page, dashboard.url, "alice@example.com")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("👤 alice@example.com — operator")).to_be_visible()
    expect(sidebar.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("button", name="🚨 Emergency rollback")).to_be_visible()
    _flag_detail(page, dashboard.url)
    _sees_the_actions(page)
    page.reload()  # the identity is a cookie: a reload keeps it
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    expect(sidebar.get_by_text("👤 alice@example.com — operator")).to_be_visible()
    _sees_the_actions(page)
    page.screenshot(path=str(SCREENSHOTS / "signed-in.png"))

    sign_out(page)
    expect(sidebar.get_by_text("👁 Viewer — not signed in")).to_be_visible()
    expect(sidebar.get_by_text("alice@example.com")).to_have_count(0)
    _flag_detail(page, dashboard.url)
    _sees_no_actions(page)
    _no_error(page, dashboard)
    context.close()


def test_a_signed_in_user_the_roles_do_not_name_is_a_viewer(
    chromium: Browser, dashboard: OidcDashboard
):
    context = chromium.new_context(viewport=VIEWPORT)
    page = sign_in(context, dashboard.url, "victor@example.com")
    expect(page.get_by_text("👤 victor@example.com — viewer")).to_be_visible()
    expect(page.get_by_text("Rollout overview")).to_be_visible(timeout=45_000)
    expect(page.get_by_role("button", name="🚨 Emergency rollback")).to_have_count(0)
    _flag_detail(page, dashboard.url)
    _sees_no_actions(page)
    _no_error(page, dashboard)
    context.close()


def test_an_admin_through_the_groups_claim_gets_the_actions(
    chromium: Browser, dashboard: OidcDashboard
):
    context = chromium.new_context(viewport=VIEWPORT)
    page = sign_in(context, dashboard.url, "carol@example.com")
    expect(page.get_by_text("👤 carol@example.com — admin")).to_be_visible()
    _flag_detail(page, dashboard.url)
    _sees_the_actions(page)
    _no_error(page, dashboard)
    context.close()


def test_two_people_in_two_browsers_are_each_themselves(
    chromium: Browser, dashboard: OidcDashboard
):
    alice = sign_in(chromium.new_context(viewport=VIEWPORT), dashboard.url, "alice@example.com")
    victor = sign_in(chromium.new_context(viewport=VIEWPORT), dashboard.url, "victor@example.com")
    alice.reload()
    expect(alice.get_by_text("👤 alice@example.com — operator")).to_be_visible(timeout=45_000)
    expect(victor.get_by_text("👤 victor@example.com — viewer")).to_be_visible()
    for page in (alice, victor):
        page.context.close()


def test_a_name_from_the_provider_is_shown_as_written(chromium: Browser, dashboard: OidcDashboard):
    """The provider decides what a login name is; the page never reads it as markdown."""
    name = "**bold** [link](javascript:alert(1)) `tick` <b>x</b>@example.com"
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, dashboard.url, name)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(f"👤 {name} — viewer")).to_be_visible()
    expect(sidebar.locator("a[href^='javascript'], a[href^='mailto']")).to_have_count(0)
    expect(sidebar.locator("b", has_text="x")).to_have_count(0)
    expect(sidebar.locator("strong", has_text="bold")).to_have_count(0)
    _no_error(page, dashboard)
    assert dialogs == []
    context.close()


def test_opened_at_another_address_it_points_to_the_one_sign_in_returns_to(
    chromium: Browser, dashboard: OidcDashboard
):
    """127.0.0.1 is not localhost for cookies: a login started there could not finish."""
    port = dashboard.url.rsplit(":", 1)[1]
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{port}")
    sidebar = page.get_by_test_id("stSidebar")
    expect(
        sidebar.get_by_text(
            f"Sign-in works only at {dashboard.url} (the address the provider returns to), "
            f"not at http://127.0.0.1:{port}."
        )
    ).to_be_visible(timeout=45_000)
    expect(sidebar.get_by_role("button", name="Log in")).to_have_count(0)
    with context.expect_page() as opened:  # a new tab, on the right address
        sidebar.get_by_role("link", name="Open it to log in").click()
    there = opened.value
    there.wait_for_url(f"{dashboard.url}/**")
    expect(there.get_by_role("button", name="Log in")).to_be_visible(timeout=45_000)
    sign_in(there, dashboard.url, "alice@example.com")
    context.close()


def test_the_identity_cookie_holds_only_with_the_cookie_secret(
    chromium: Browser, dashboard: OidcDashboard
):
    """Why `cookie_secret` is a secret: whoever knows it is anyone (this also pins the
    `forge_sign_in` shortcut to the Streamlit version in use)."""
    forged = chromium.new_context(viewport=VIEWPORT)
    forge_sign_in(forged, dashboard, "carol@example.com", ["admins"])
    page = forged.new_page()
    page.goto(dashboard.url)
    expect(page.get_by_text("👤 carol@example.com — admin")).to_be_visible(timeout=45_000)
    forged.close()

    guessed = chromium.new_context(viewport=VIEWPORT)
    forge_sign_in(guessed, dashboard, "carol@example.com", ["admins"], cookie_secret="guess")
    page = guessed.new_page()
    page.goto(dashboard.url)
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=45_000)
    expect(page.get_by_text("👁 Viewer — not signed in")).to_be_visible()
    expect(page.get_by_text("carol@example.com")).to_have_count(0)
    guessed.close()


def _reload_until_log_in(page: Page) -> None:
    """Reload, as a person waiting for the provider does, until "Log in" shows (≤ 40 s)."""
    deadline = time.monotonic() + 40
    while True:
        page.reload()
        try:
            expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=5_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_a_provider_that_is_down_is_named_and_watching_goes_on(chromium: Browser, tmp_path: Path):
    port = free_port()
    callback = f"http://localhost:{port}/oauth2callback"
    provider_port = free_port()
    log = tmp_path / "provider.log"
    provider = start_provider(log, port=provider_port, redirect_uris=[callback])
    server = start_oidc_dashboard(
        provider,
        tmp_path,
        env={"ROLLOUT_ROLES": json.dumps(ROLES)},
        port=port,
        client=provider.static_client,
    )
    down = (
        f"Sign-in provider unreachable (127.0.0.1:{provider_port}): connection refused. "
        "You can still watch; actions need sign-in. Reload the page to try again."
    )
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        provider.stop()  # down before anyone opened the page
        page.goto(server.url)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text(down)).to_be_visible(timeout=45_000)
        expect(sidebar.get_by_role("button", name="Log in")).to_have_count(0)
        expect(page.get_by_text("Rollout overview")).to_be_visible()  # watching goes on
        assert "alpha" in grid.cells(page, "alpha")
        page.screenshot(path=str(SCREENSHOTS / "sign-in-provider-down.png"))
        _no_error(page, server)

        # back up: "Log in" returns; then down again between page load and click
        provider = start_provider(log, port=provider_port, redirect_uris=[callback])
        _reload_until_log_in(page)
        provider.stop()
        sidebar.get_by_role("button", name="Log in").click()
        expect(sidebar.get_by_text(down)).to_be_visible(timeout=30_000)
        assert page.url.startswith(server.url)
        _no_error(page, server)

        # back up for good: sign-in works
        provider = start_provider(log, port=provider_port, redirect_uris=[callback])
        _reload_until_log_in(page)
        sign_in(page, server.url, "alice@example.com")

        # down while signed in: signing out still works, locally
        provider.stop()
        sidebar.get_by_role("button", name="Log out").click()
        expect(sidebar.get_by_text("👁 Viewer — not signed in")).to_be_visible(timeout=30_000)
        expect(sidebar.get_by_role("button", name="Log out")).to_have_count(0)
        _no_error(page, server)
    finally:
        context.close()
        provider.stop()
        server.stop()
