"""Undo within reason, as an on-call operator does it in a real Chromium (demo mode: the
local operator, no admin, no metrics): kill a flag and restore it right away from its
history; an emergency rollback of 5 flags shown as one action and restored whole from
the Audit page; an undo refused because the flag moved since, and one refused after the
time limit, each saying why. The screenshots of the restore dialog and of the grouped
emergency record are taken here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from app.audit import AuditLog, Outcome
from app.flags.loader import load_config
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from app.serve import streamlit_command
from tests.support import grid
from tests.support.servers import Process, free_port, start

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
OLGA = Identity("olga", Role.OPERATOR, "test")
TED = Identity("ted", Role.OPERATOR, "test")
FIVE = {
    "ab_testing": 25.0,
    "checkout_v2": 10.0,
    "dark_mode": 50.0,
    "new_search": 5.0,
    "price_tag": 1.0,
}
FLAGS = (
    'version: "1"\nflags:\n'
    + "".join(
        f"  {flag}:\n    state: rollout\n    rollout: {{percentage: {pct:g}}}\n"
        for flag, pct in FIVE.items()
    )
    + "  banner:\n    state: enabled\n"
)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """The dashboard in demo mode (a local operator, no admin) on five rollout flags."""
    state = tmp_path_factory.mktemp("undo")
    (state / "feature_flags.yaml").write_text(FLAGS)
    port = free_port()
    env = {"ROLLOUT_STATE_DIR": str(state), "ROLLOUT_DEMO": "true"}
    server = start(streamlit_command(port), env, port, state / "streamlit.log")
    yield server, state
    server.stop()


def _flag(state: Path, flag: str) -> tuple[FlagState, float]:
    definition = load_config(state / "feature_flags.yaml", "production").flags[flag]
    return definition.state, definition.percentage


def _audit(state: Path) -> AuditLog:
    return AuditLog(open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl")


def _act(state: Path, request: ActionRequest, at: datetime | None = None) -> str:
    """Apply `request` as the CLI would (passing guards); its first audit id."""
    result = execute_action(
        request,
        YamlFlagBackend(state / "feature_flags.yaml"),
        _audit(state),
        lambda _s, _f: [GuardResult("data_fresh", True, 1.0, 120, "fresh")],
        now=(lambda: at) if at else (lambda: datetime.now(UTC)),
    )
    assert result.applied, result.error
    return result.audit[0].id


def _no_error(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def _reason(page: Page, text: str) -> None:
    box = page.get_by_role("dialog").get_by_label("Reason")
    box.fill(text)
    box.press("Tab")


def _type(page: Page, text: str) -> None:
    box = page.get_by_role("dialog").get_by_label("to confirm")
    box.fill(text)
    box.press("Tab")


def _alert(dialog: Locator, words: str) -> Locator:
    """The dialog's notice (info, warning, error) that says `words`."""
    return dialog.locator('[data-testid^="stAlertContent"]').filter(has_text=words)


def _dialog_cells(page: Page, waiting_for: str) -> list[str]:
    """The cell texts of the dialog's grid, once one of them is `waiting_for`."""
    cells = page.get_by_role("dialog").locator('[role="gridcell"]')
    expect(cells.filter(has_text=waiting_for).first).to_be_attached(timeout=30_000)
    return cells.all_inner_texts()


def _screenshot(page: Page, name: str) -> None:
    page.wait_for_timeout(500)  # let the grid draw its canvas
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def test_an_operator_kills_a_flag_and_restores_it_right_away(chromium: Browser, dashboard):
    server, state = dashboard
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/flag_detail?env=production&flag=ab_testing&refresh=off")
    page.get_by_role("button", name="Kill (0 %, disabled)").click(timeout=45_000)
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Kill ab_testing in production: 25 % → 0 %")).to_be_visible(
        timeout=30_000
    )
    _reason(page, "checkout errors")
    _type(page, "ab_testing")
    dialog.get_by_role("button", name="Confirm: 🛑 Kill (0 %, disabled)").click()
    expect(page.get_by_text("Applied: ab_testing: rollout 25 % → disabled 0 %")).to_be_visible(
        timeout=30_000
    )
    assert _flag(state, "ab_testing") == (FlagState.DISABLED, 0.0)
    (kill,) = _audit(state).entries(flag="ab_testing")

    # the flag's history offers Restore; right after the kill, its guards would fail
    # (nothing soaks at 0 %): the dialog shows the evidence from before the kill instead
    page.get_by_role("button", name=f"Restore #{kill.id}").click(timeout=30_000)
    dialog = page.get_by_role("dialog")
    expect(
        dialog.get_by_text(f"Restore #{kill.id} ab_testing in production: 0 % → 25 %")
    ).to_be_visible(timeout=30_000)
    expect(_alert(dialog, "Undo within reason:")).to_contain_text(
        f"undoes #{kill.id} by local-operator"
    )
    expect(_alert(dialog, "Undo within reason:")).to_contain_text("ab_testing has not moved since")
    expect(dialog.get_by_text("Evidence before the change it undoes")).to_be_visible()
    expect(dialog.get_by_text("Only an admin can override")).to_have_count(0)
    confirm = dialog.get_by_role("button", name="Confirm: ↩️ Restore ab_testing to rollout 25 %")
    _reason(page, "the errors were elsewhere")
    expect(confirm).to_be_disabled()  # until the flag's name is typed
    _type(page, "ab_tasting")
    expect(confirm).to_be_disabled()
    _type(page, "ab_testing")
    expect(confirm).to_be_enabled()
    _screenshot(page, "restore-dialog.png")
    confirm.click()
    expect(page.get_by_text("Applied: ab_testing: disabled 0 % → rollout 25 %")).to_be_visible(
        timeout=30_000
    )
    assert _flag(state, "ab_testing") == (FlagState.ROLLOUT, 25.0)
    restore, killed = _audit(state).entries(flag="ab_testing")
    assert (restore.action, restore.outcome, restore.override) == (
        "restore",
        Outcome.APPLIED,
        False,
    )
    assert restore.reason == f"restore of #{kill.id}: the errors were elsewhere"

    # the audit shows both, each with its Restore
    page.goto(f"{server.url}/audit?flag=ab_testing")
    cells = grid.cells(page, "restore")
    assert "kill" in cells and cells.count("applied") == 2
    assert [c for c in cells if "audit?id=" in c] == [
        f"audit?id={restore.id}",
        f"audit?id={killed.id}",
    ]
    _no_error(page)
    page.close()


def test_an_emergency_rollback_is_one_action_and_one_restore_puts_back_all_five(
    chromium: Browser, dashboard
):
    server, state = dashboard
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/?env=production")
    page.get_by_role("button", name="Emergency rollback").click(timeout=45_000)
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Emergency rollback in production: 5 flags")).to_be_visible(
        timeout=30_000
    )
    _reason(page, "incident 12")
    _type(page, "production")
    dialog.get_by_role("button", name="Confirm: 🚨 Kill 5 flags in production").click()
    expect(page.get_by_text("Applied: 5 flags changed in production:")).to_be_visible(
        timeout=30_000
    )
    assert {f: _flag(state, f) for f in FIVE} == {f: (FlagState.DISABLED, 0.0) for f in FIVE}
    records = sorted(
        (e for e in _audit(state).entries() if e.action == "emergency_rollback"),
        key=lambda e: int(e.id),
    )
    assert len(records) == 5
    first, last = records[0].id, records[-1].id
    expect(
        page.get_by_role("button", name=f"Restore #{first}: restores all 5 flags")
    ).to_be_visible()

    # the last record of the five opens as the whole action
    page.goto(f"{server.url}/audit?id={last}")
    expect(
        page.get_by_text(f"Record {last} is one of the 5 records of one emergency_rollback")
    ).to_contain_text(f"(action #{first}): restoring it restores all 5 flags", timeout=30_000)
    cells = grid.cells(page, f"#{first} · 5 flags")
    assert cells.count(f"#{first} · 5 flags") == 5
    group = grid.cells(page, "price_tag", index=1)
    assert [f for f in FIVE if f in group] == list(FIVE)
    _screenshot(page, "audit-emergency-group.png")

    page.get_by_role("button", name=f"Restore #{first}: restores all 5 flags").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Restore #{first} in production: 5 flags")).to_be_visible(
        timeout=30_000
    )
    exact = dialog.locator("code")
    expect(exact.first).to_be_visible()
    for flag, pct in FIVE.items():
        expect(exact).to_contain_text(f"{flag}: disabled 0 % → rollout {pct:g} %")
    expect(_alert(dialog, "Undo within reason:")).to_contain_text(
        "none of its 5 flags has moved since"
    )
    # each flag's evidence under its own name, underscores kept, numbers with units
    report = _dialog_cells(page, "ab_testing: data fresh")
    assert "ab_testing: soak time" in report and "ab testing: data fresh" not in report
    assert "≤ 2 min" in report and "120" not in report  # the freshness limit, in minutes
    _reason(page, "the incident was elsewhere")
    _type(page, "production")
    dialog.get_by_role("button", name="Confirm: ↩️ Restore 5 flags to their prior state").click()
    expect(page.get_by_text("Applied: 5 flags changed in production:")).to_be_visible(
        timeout=30_000
    )
    assert {f: _flag(state, f) for f in FIVE} == {
        f: (FlagState.ROLLOUT, pct) for f, pct in FIVE.items()
    }
    restored = [e for e in _audit(state).entries() if e.action == "restore"]
    assert {e.flag for e in restored if e.reason.startswith(f"restore of #{first}:")} == set(FIVE)
    _no_error(page)
    page.close()


def test_an_undo_after_the_flag_moved_since_is_refused_saying_why(chromium: Browser, dashboard):
    server, state = dashboard
    kill = _act(state, ActionRequest(Action.KILL, "production", "errors", OLGA, flag="dark_mode"))
    _act(
        state,
        ActionRequest(
            Action.ADVANCE, "production", "try again", TED, flag="dark_mode", to_percentage=1.0
        ),
    )
    _act(state, ActionRequest(Action.KILL, "production", "errors again", OLGA, flag="dark_mode"))
    assert _flag(state, "dark_mode") == (FlagState.DISABLED, 0.0)  # where the first kill left it
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/audit?id={kill}")
    page.get_by_role("button", name=f"Restore #{kill}").click(timeout=45_000)
    dialog = page.get_by_role("dialog")
    expect(_alert(dialog, "Not an undo within reason:")).to_contain_text(
        f"dark_mode moved since #{kill}", timeout=30_000
    )
    expect(_alert(dialog, "Not an undo within reason:")).to_contain_text(
        "by ted at", timeout=30_000
    )
    expect(_alert(dialog, "Refused: guards failed")).to_contain_text("no admin is configured here")
    expect(dialog.get_by_text("A second operator must approve this.")).to_have_count(0)
    _reason(page, "put it back")
    _type(page, "dark_mode")
    expect(
        dialog.get_by_role("button", name="Confirm: ↩️ Restore dark_mode to rollout 50 %")
    ).to_be_disabled()
    page.keyboard.press("Escape")
    assert _flag(state, "dark_mode") == (FlagState.DISABLED, 0.0)
    _no_error(page)
    page.close()


def test_an_undo_after_the_time_limit_is_refused_saying_how_old(chromium: Browser, dashboard):
    server, state = dashboard
    long_ago = datetime.now(UTC) - timedelta(hours=30)
    kill = _act(
        state,
        ActionRequest(Action.KILL, "production", "night incident", OLGA, flag="price_tag"),
        at=long_ago,
    )
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/audit?id={kill}")
    page.get_by_role("button", name=f"Restore #{kill}").click(timeout=45_000)
    dialog = page.get_by_role("dialog")
    expect(_alert(dialog, "Not an undo within reason:")).to_contain_text(
        f"#{kill} was applied 30 h ago: an undo without override is allowed within 24 h",
        timeout=30_000,
    )
    _reason(page, "finally")
    _type(page, "price_tag")
    expect(
        dialog.get_by_role("button", name="Confirm: ↩️ Restore price_tag to rollout 1 %")
    ).to_be_disabled()
    page.keyboard.press("Escape")
    assert _flag(state, "price_tag") == (FlagState.DISABLED, 0.0)
    _no_error(page)
    page.close()
