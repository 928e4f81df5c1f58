"""Four-eyes approval as two people do it, in a real Chromium: alice and bob, both
operators through their `oncall` group, each in a browser context of their own, each
signed in through the real OpenID Connect provider's login form (tests/support/oidc.py).
The dashboard runs with sign-in configured, approval in production (the default) and the
demo simulator's live traffic, so the guards pass when bob's approval applies alice's
advance.

alice asks for an advance in the dialog and sees the flag unchanged; bob, whose Requests
tab was open before she asked, sees it arrive, approves it, and sees the new percentage;
the audit tells requested (alice) → approved (bob) → applied (bob). bob rejects another
request with a reason alice then reads; alice cancels one. The screenshots of the dialog,
both sides of the Requests page and the overview's marker are taken here."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.approvals import Approvals, RequestStatus, RequestStore
from app.audit import AuditLog
from app.flags.loader import load_config
from app.metrics_db.database import open_database
from app.rollout.exit_codes import ExitCode
from app.rollout.roles import Identity, Role
from tests.support import grid
from tests.support.approval_state import start_simulator
from tests.support.oidc import OidcProvider, serve_signing_in, sign_in
from tests.support.servers import Process

pytestmark = [pytest.mark.browser, pytest.mark.oidc]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ALICE, BOB = "alice@example.com", "bob@example.com"
PROD = "production"
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass
class Dashboard:
    server: Process
    state: Path

    def url(self, path: str = "") -> str:
        return f"{self.server.url}/{path}"

    def percentage(self, flag: str) -> float:
        return load_config(self.state / "feature_flags.yaml", "production").flags[flag].percentage

    def requests(self) -> RequestStore:
        return RequestStore(open_database(f"sqlite:///{self.state / 'metrics.db'}"))

    def approvals(self) -> Approvals:
        engine = open_database(f"sqlite:///{self.state / 'metrics.db'}")
        return Approvals(RequestStore(engine), AuditLog(engine, self.state / "j.jsonl"), {PROD})

    def steps(self, flag: str) -> list[tuple[str, str]]:
        """(actor, outcome) of `flag`'s audit records, oldest first."""
        log = AuditLog(
            open_database(f"sqlite:///{self.state / 'metrics.db'}"), self.state / "j.jsonl"
        )
        return [(e.actor, str(e.outcome)) for e in reversed(log.entries(flag=flag))]


@pytest.fixture(scope="module")
def dashboard(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[Dashboard]:
    state = tmp_path_factory.mktemp("four-eyes")
    simulator = start_simulator(state)
    try:
        server = serve_signing_in(
            oidc_provider,
            state,
            {
                "ROLLOUT_ROLES": json.dumps({"group:oncall": "operator"}),
                "ROLLOUT_REFRESH_SECONDS": "3",
            },
        )
    except BaseException:
        simulator.terminate()
        raise
    yield Dashboard(server, state)
    server.stop()
    simulator.terminate()
    try:
        simulator.wait(timeout=15)
    except subprocess.TimeoutExpired:
        simulator.kill()


@pytest.fixture
def people(chromium: Browser, dashboard: Dashboard) -> Iterator[tuple[Page, Page]]:
    """alice's and bob's pages, each in a browser context (cookies) of their own, signed
    in at the provider's login form."""
    contexts: list[BrowserContext] = [
        chromium.new_context(viewport=VIEWPORT)
        for _ in (ALICE, BOB)  # type: ignore[arg-type]
    ]
    yield (
        sign_in(contexts[0], dashboard.server.url, ALICE),
        sign_in(contexts[1], dashboard.server.url, BOB),
    )
    for context in contexts:
        context.close()


def _no_error(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def _screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=30_000)
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def _open_requests(page: Page, dashboard: Dashboard, who: str) -> None:
    page.goto(dashboard.url("requests"))
    expect(page.get_by_role("heading", name="✋ Change requests")).to_be_visible(timeout=45_000)
    expect(page.get_by_text(f"👤 {who} — operator")).to_be_visible()


def _overview_row(page: Page, flag: str, percent: str) -> list[str]:
    """The first five cells of `flag`'s overview row once its Rollout % reads `percent`
    (the page refreshes on its own); what it shows after 30 s otherwise."""
    deadline = time.monotonic() + 30
    while True:
        row = grid.row(page, flag, width=5, offset=1)
        if row[2].strip() == percent or time.monotonic() > deadline:
            return row
        page.wait_for_timeout(500)


def _request_advance(page: Page, dashboard: Dashboard, flag: str, reason: str) -> str:
    """alice asks, in the dialog, for `flag`'s next step; the request's number."""
    page.goto(dashboard.url(f"flag_detail?env=production&flag={flag}&refresh=off"))
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    page.get_by_role("button", name="Advance to").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("A second operator must approve this.")).to_be_visible(timeout=45_000)
    dialog.get_by_label("Reason").fill(reason)
    dialog.get_by_label("Type").fill(flag)
    dialog.get_by_label("Type").press("Tab")
    confirm = dialog.get_by_role("button", name="Request approval")
    expect(confirm).to_be_enabled(timeout=10_000)
    expect(dialog.get_by_role("button", name="Advance")).to_have_count(0)
    confirm.dblclick()  # a double click makes one request
    created = page.get_by_text("created: waits for another operator")
    expect(created).to_be_visible(timeout=45_000)
    number = created.inner_text().split("#", 1)[1].split(" ", 1)[0]
    return number


def test_alice_asks_bob_approves_and_the_audit_tells_both(people, dashboard):
    alice, bob = people
    assert dashboard.percentage("ab_testing") == 25.0
    _open_requests(bob, dashboard, BOB)  # bob's tab, open before alice asks
    expect(bob.get_by_text("Waiting for you (0)")).to_be_visible()

    alice.goto(dashboard.url("flag_detail?env=production&flag=ab_testing&refresh=off"))
    expect(alice.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    expect(alice.get_by_text(f"👤 {ALICE} — operator")).to_be_visible()
    alice.get_by_role("button", name="Advance to 50 %").click()
    dialog = alice.get_by_role("dialog")
    expect(dialog.get_by_text("A second operator must approve this.")).to_be_visible(timeout=45_000)
    expect(
        dialog.get_by_text("Advance ab_testing in production: 25 % → 50 % (needs approval)")
    ).to_be_visible()
    dialog.get_by_label("Reason").fill("steady for an hour, errors flat")
    dialog.get_by_label("Type").fill("ab_testing")
    dialog.get_by_label("Type").press("Tab")
    expect(
        dialog.get_by_role("button", name="✋ Request approval: ab_testing 25 % → 50 %")
    ).to_be_enabled(timeout=10_000)
    _screenshot(alice, "request-dialog.png")
    alice.keyboard.press("Escape")
    expect(alice.get_by_role("dialog")).to_have_count(0)

    number = _request_advance(alice, dashboard, "ab_testing", "steady for an hour, errors flat")
    expect(
        alice.get_by_text(f"Change request #{number} created: waits for another operator")
    ).to_be_visible()
    assert dashboard.percentage("ab_testing") == 25.0
    expect(alice.get_by_text("ab_testing stays at rollout 25 %")).to_be_visible()
    pending = dashboard.requests().matching(statuses=[RequestStatus.PENDING])
    assert [c.id for c in pending] == [number]  # one request for the double click
    expect(
        alice.get_by_text(f"Change request #{number} by {ALICE} waits for another operator")
    ).to_be_visible()
    _no_error(alice)

    # alice's Requests page: under "Asked by you", Cancel, no Approve
    alice.get_by_role("link", name=f"Change request #{number} on the Requests page").first.click()
    expect(alice.get_by_text("Asked by you (1)")).to_be_visible(timeout=45_000)
    expect(alice.get_by_text("Waiting for you (0)")).to_be_visible()
    expect(alice.get_by_role("button", name=f"Cancel request #{number}")).to_be_visible()
    expect(alice.get_by_role("button", name="Approve")).to_have_count(0)
    expect(alice.get_by_text("Your own request: another operator must approve it.")).to_be_visible()
    # and the function refuses it when called as alice's sign-in makes her, buttons or not
    as_alice = Identity(ALICE, Role.OPERATOR, "oidc")
    refused = dashboard.approvals().approve(number, as_alice, lambda _request: pytest.fail())
    assert refused.exit_code is ExitCode.REFUSED and "your own request" in refused.message
    assert dashboard.requests().get(number).status is RequestStatus.PENDING
    _screenshot(alice, "requests-asked.png")

    # bob's stale tab shows it on its own
    expect(bob.get_by_text("Waiting for you (1)")).to_be_visible(timeout=30_000)
    card = f"#{number} · production · advance ab_testing 25 % → 50 %"
    expect(bob.get_by_text(card, exact=False)).to_be_visible()
    expect(bob.get_by_text("steady for an hour, errors flat")).to_be_visible()
    expect(bob.get_by_text("ab_testing: rollout 25 % → rollout 50 %")).to_be_visible()
    expect(bob.get_by_role("button", name=f"Approve #{number}")).to_be_visible()
    _screenshot(bob, "requests-waiting.png")
    bob.get_by_label("Comment").fill("dashboards look fine")
    bob.get_by_role("button", name=f"Approve #{number}").click()
    expect(
        bob.get_by_text(f"#{number} approved and applied: ab_testing: rollout 25 % → rollout 50 %")
    ).to_be_visible(timeout=45_000)
    assert dashboard.percentage("ab_testing") == 50.0
    expect(bob.get_by_text("Recently decided (1)")).to_be_visible()
    _no_error(bob)

    bob.goto(dashboard.url("?env=production&q=ab_testing"))
    # the overview is computed once per refresh interval (3 s here) for every viewer
    _health, flag, percent, _errors, _ = _overview_row(bob, "ab_testing", "50")
    assert (flag, percent.strip()) == ("ab_testing", "50")
    headers = bob.locator('[data-testid="stDataFrame"] [role="columnheader"]')
    assert "Request" not in [h.strip() for h in headers.all_inner_texts()]  # none pending

    assert dashboard.steps("ab_testing") == [
        (ALICE, "requested"),
        (BOB, "approved"),
        (BOB, "applied"),
    ]
    bob.goto(dashboard.url("audit?flag=ab_testing"))
    cells = grid.cells(bob, "requested")
    shown = [c for c in cells if c in ("requested", "approved", "applied")]
    assert shown == ["applied", "approved", "requested"]  # newest first
    actors = [c for c in cells if c in (ALICE, BOB)]
    assert actors == [BOB, BOB, ALICE]
    _no_error(bob)


def test_bob_rejects_with_a_reason_and_alice_reads_it(people, dashboard):
    alice, bob = people
    number = _request_advance(alice, dashboard, "canary_deployment", "canary is clean")
    assert dashboard.percentage("canary_deployment") == 5.0

    # the overview marks the flag while it waits
    bob.goto(dashboard.url("?env=production"))
    expect(bob.get_by_text("1 change request waits for approval in production")).to_be_visible(
        timeout=45_000
    )
    row = grid.row(bob, "canary_deployment", width=5, offset=1)
    assert row[4] == f"⏳ #{number} → 10 %"
    headers = bob.locator('[data-testid="stDataFrame"] [role="columnheader"]')
    assert [h.strip() for h in headers.all_inner_texts()][:5] == [
        "Health",
        "Flag",
        "Rollout %",
        "Errors",
        "Request",
    ]
    _screenshot(bob, "overview-request.png")

    _open_requests(bob, dashboard, BOB)
    reject = bob.get_by_role("button", name=f"Reject #{number}")
    reject.click()
    expect(bob.get_by_text("why reject:")).to_be_visible(timeout=30_000)
    assert dashboard.requests().get(number).status is RequestStatus.PENDING
    bob.get_by_label("Comment").fill("not before the Monday traffic")
    bob.get_by_role("button", name=f"Reject #{number}").click()
    expect(bob.get_by_text(f"#{number} rejected")).to_be_visible(timeout=30_000)
    assert dashboard.percentage("canary_deployment") == 5.0

    _open_requests(alice, dashboard, ALICE)
    expect(alice.get_by_text("Asked by you (0)")).to_be_visible()
    expect(
        alice.get_by_text(f"rejected by {BOB} just now: “not before the Monday traffic”")
    ).to_be_visible()
    _screenshot(alice, "requests-decided.png")
    _no_error(alice)
    _no_error(bob)


def test_enter_in_a_comment_box_never_approves_or_rejects(people, dashboard):
    """bob types the reason he means to reject with and presses Enter, as the box used to
    invite: nothing is decided until he clicks a button; then his click rejects it."""
    alice, bob = people
    number = _request_advance(alice, dashboard, "canary_deployment", "canary looks clean")
    _open_requests(bob, dashboard, BOB)
    expect(bob.get_by_role("button", name=f"Approve #{number}")).to_be_visible()
    comment = bob.get_by_label("Comment")
    comment.fill("not now: wait until metrics are wired")
    comment.press("Enter")
    bob.wait_for_timeout(2_000)  # time for a submit to run, had Enter sent one
    expect(bob.get_by_text(f"#{number} approved")).to_have_count(0)
    expect(bob.get_by_text("Press Enter to submit form")).to_have_count(0)
    assert dashboard.requests().get(number).status is RequestStatus.PENDING
    assert dashboard.percentage("canary_deployment") == 5.0
    comment.press("Control+Enter")
    bob.wait_for_timeout(1_000)
    assert dashboard.requests().get(number).status is RequestStatus.PENDING

    bob.get_by_role("button", name=f"Reject #{number}").click()
    expect(bob.get_by_text(f"#{number} rejected")).to_be_visible(timeout=30_000)
    decided = dashboard.requests().get(number)
    assert decided.status is RequestStatus.REJECTED
    assert dashboard.percentage("canary_deployment") == 5.0
    _no_error(bob)


def test_alice_cancels_her_request(people, dashboard):
    alice, bob = people
    number = _request_advance(alice, dashboard, "canary_deployment", "canary is clean now")
    _open_requests(bob, dashboard, BOB)
    expect(bob.get_by_role("button", name=f"Approve #{number}")).to_be_visible()

    _open_requests(alice, dashboard, ALICE)
    alice.get_by_role("button", name=f"Cancel request #{number}").click()
    expect(alice.get_by_text(f"#{number} cancelled")).to_be_visible(timeout=30_000)
    expect(alice.get_by_text("Asked by you (0)")).to_be_visible()
    assert dashboard.requests().get(number).status is RequestStatus.CANCELLED
    # bob's tab loses the button on its next refresh
    expect(bob.get_by_role("button", name=f"Approve #{number}")).to_have_count(0, timeout=30_000)
    assert dashboard.steps("canary_deployment")[-2:] == [(ALICE, "requested"), (ALICE, "cancelled")]
    _no_error(alice)


def test_bobs_outcome_shows_in_the_card_he_clicked_and_the_next_approve_stays_put(
    people, dashboard
):
    """alice asks for an advance, then kills a flag and undoes the kill at once: an undo
    within reason, which in production still waits for bob. Two requests wait; bob
    approves the top one (the undo): its outcome appears in its own card and stays until
    dismissed, and the other request's Approve does not slide under his pointer."""
    alice, bob = people
    advance = _request_advance(alice, dashboard, "canary_deployment", "canary is clean")
    undo = _undo_a_kill(alice, dashboard, "phase2_health_checks")
    _open_requests(bob, dashboard, BOB)
    approve_undo = bob.get_by_role("button", name=f"Approve #{undo}")
    approve_advance = bob.get_by_role("button", name=f"Approve #{advance}")
    expect(approve_advance).to_be_visible(timeout=30_000)
    expect(approve_undo).to_be_visible()
    pointer = approve_undo.bounding_box()
    assert pointer is not None
    approve_undo.click()
    done = f"#{undo} approved and applied: phase2_health_checks: disabled 0 % → rollout 5 %"
    outcome = bob.get_by_text(done)
    expect(outcome).to_be_visible(timeout=45_000)
    # in the card bob clicked: below its title, above the other request
    said = outcome.bounding_box()
    title = bob.get_by_text(f"#{undo} · production · restore").bounding_box()
    assert said is not None and title is not None
    assert title["y"] < said["y"] < (approve_advance.bounding_box() or {"y": 0})["y"]
    assert dashboard.percentage("phase2_health_checks") == 5.0
    expect(approve_advance).to_be_visible()
    after = approve_advance.bounding_box()
    assert after is not None
    # #advance's Approve is not where bob's pointer rests
    assert abs(after["y"] - pointer["y"]) > pointer["height"]
    bob.wait_for_timeout(4_000)  # the board refreshes (3 s): the outcome stays
    expect(outcome).to_be_visible()
    bob.get_by_role("button", name="Dismiss").click()
    expect(bob.get_by_text(done)).to_have_count(0, timeout=30_000)
    expect(approve_advance).to_be_visible()
    _no_error(alice)
    _no_error(bob)


def _undo_a_kill(alice: Page, dashboard: Dashboard, flag: str) -> str:
    """alice kills `flag` and restores it at once from its history: in production the
    restore waits for a second person; the request's number."""
    alice.goto(dashboard.url(f"flag_detail?env=production&flag={flag}&refresh=off"))
    alice.get_by_role("button", name="Kill (0 %, disabled)").click(timeout=45_000)
    dialog = alice.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("latency spike")
    dialog.get_by_label("Type").fill(flag)
    dialog.get_by_label("Type").press("Tab")
    dialog.get_by_role("button", name="Confirm: 🛑 Kill (0 %, disabled)").click()
    expect(alice.get_by_text(f"Applied: {flag}: rollout")).to_be_visible(timeout=45_000)
    assert dashboard.percentage(flag) == 0.0
    alice.get_by_role("button", name="Restore #").first.click(timeout=30_000)
    dialog = alice.get_by_role("dialog")
    expect(dialog.get_by_text("A second operator must approve this.")).to_be_visible(timeout=45_000)
    expect(dialog.get_by_text(f"{flag} has not moved since")).to_be_visible()
    dialog.get_by_label("Reason").fill("the spike was elsewhere")
    dialog.get_by_label("Type").fill(flag)
    dialog.get_by_label("Type").press("Tab")
    dialog.get_by_role("button", name="Request approval").click(timeout=10_000)
    created = alice.get_by_text("created: waits for another operator")
    expect(created).to_be_visible(timeout=45_000)
    assert dashboard.percentage(flag) == 0.0
    return created.inner_text().split("#", 1)[1].split(" ", 1)[0]
