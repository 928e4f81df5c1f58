"""Acting on flags as a person does, in a real Chromium: a stale second tab, a flag
changed while the dialog is open, a pasted reason that is too long, an emergency
rollback with the flags it changed and Restore, a restore from the Audit page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

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
from tests.support.servers import Process, free_port, start

pytestmark = pytest.mark.browser
VIEWPORT = {"width": 1500, "height": 1000}
TED = Identity("ted", Role.OPERATOR, "test")
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
  beta:
    state: rollout
    rollout: {percentage: 10}
  gamma:
    state: enabled
  delta:
    state: rollout
    rollout: {percentage: 10}
"""
STAGING = """
flags:
  alpha:
    state: rollout
    rollout: {percentage: 50}
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Path]]:
    """The dashboard in demo mode (a local operator) on a small config, no metrics."""
    state = tmp_path_factory.mktemp("actions")
    (state / "feature_flags.yaml").write_text(FLAGS)
    (state / "feature_flags_staging.yaml").write_text(STAGING)
    port = free_port()
    env = {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_DEMO": "true",
        "ROLLOUT_TYPED_CONFIRMATION_ENVIRONMENTS": "[]",
    }
    server = start(streamlit_command(port), env, port, state / "streamlit.log")
    yield server, state
    server.stop()


def _flag(state: Path, flag: str, environment: str = "production") -> tuple[FlagState, float]:
    definition = load_config(state / "feature_flags.yaml", environment).flags[flag]
    return definition.state, definition.percentage


def _audit(state: Path) -> AuditLog:
    return AuditLog(open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl")


def _flag_page(chromium: Browser, server: Process, flag: str) -> Page:
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/flag_detail?env=production&flag={flag}&refresh=off")
    expect(page.get_by_text("Guard report for the next step")).to_be_visible(timeout=45_000)
    return page


def _no_error(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def _reason(page: Page, text: str) -> None:
    box = page.get_by_role("dialog").get_by_label("Reason")
    box.fill(text)
    box.press("Tab")


def test_a_stale_tab_sees_the_fresh_state_and_who_changed_it(chromium, dashboard):
    server, state = dashboard
    first = _flag_page(chromium, server, "alpha")
    expect(first.get_by_role("button", name="Roll back to 10 %")).to_be_visible()
    expect(first.get_by_role("button", name="Advance to 50 %")).to_be_visible()
    expect(first.get_by_role("button", name="Kill (0 %, disabled)")).to_be_visible()

    second = _flag_page(chromium, server, "alpha")
    second.get_by_role("button", name="Roll back to 10 %").click()
    dialog = second.get_by_role("dialog")
    expect(dialog.get_by_text("Roll back alpha in production: 25 % → 10 %")).to_be_visible(
        timeout=30_000
    )
    _reason(second, "errors up in tab 2")
    dialog.get_by_role("button", name="Confirm: ⏬ Roll back to 10 %").click()
    expect(second.get_by_text("Applied: alpha: rollout 25 % → rollout 10 %")).to_be_visible(
        timeout=30_000
    )
    assert _flag(state, "alpha") == (FlagState.ROLLOUT, 10.0)

    # the first tab still shows 25 % and its button still says "to 10 %"
    first.get_by_role("button", name="Roll back to 10 %").click()
    dialog = first.get_by_role("dialog")
    expect(dialog.get_by_text("Roll back alpha in production: 10 % → 5 %")).to_be_visible(
        timeout=30_000
    )
    expect(
        dialog.get_by_text("Changed since you looked: local-operator", exact=False)
    ).to_contain_text("rollout 25 % → rollout 10 %")
    expect(dialog.get_by_text("alpha: rollout 10 % → rollout 5 %")).to_be_visible()
    _reason(first, "still too many errors")
    confirm = dialog.get_by_role("button", name="Confirm: ⏬ Roll back to 5 %")
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(first.get_by_text("Applied: alpha: rollout 10 % → rollout 5 %")).to_be_visible(
        timeout=30_000
    )
    assert _flag(state, "alpha") == (FlagState.ROLLOUT, 5.0)
    newest, older = _audit(state).entries(flag="alpha")
    assert (newest.from_percentage, newest.to_percentage, newest.outcome) == (
        10.0,
        5.0,
        Outcome.APPLIED,
    )
    assert newest.reason == "still too many errors" and older.reason == "errors up in tab 2"
    _no_error(first)
    first.goto(f"{server.url}/audit?id={newest.id}")
    expect(
        first.get_by_text(f"Record {newest.id}: rollback alpha in production, rollout 10 %")
    ).to_be_visible(timeout=30_000)
    first.close()
    second.close()


def test_a_change_while_the_dialog_is_open_is_refused_naming_who_and_what(chromium, dashboard):
    server, state = dashboard
    page = _flag_page(chromium, server, "beta")
    page.get_by_role("button", name="Roll back to 5 %").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Roll back beta in production: 10 % → 5 %")).to_be_visible(
        timeout=30_000
    )
    # meanwhile, ted rolls beta back from a terminal
    backend = YamlFlagBackend(state / "feature_flags.yaml")
    changed = execute_action(
        ActionRequest(Action.ROLLBACK, "production", "from the terminal", TED, flag="beta"),
        backend,
        _audit(state),
        lambda _s, _f: [GuardResult("data_fresh", True, 1.0, 120, "fresh")],
    )
    assert changed.applied
    _reason(page, "errors on beta")
    dialog.get_by_role("button", name="Confirm: ⏬ Roll back to 5 %").click()
    warning = page.get_by_text("Not applied: changed since you looked: beta is now rollout 5 %")
    expect(warning).to_be_visible(timeout=30_000)
    expect(warning).to_contain_text("ted")
    expect(warning).to_contain_text("rollout 10 % → rollout 5 %")
    assert _flag(state, "beta") == (FlagState.ROLLOUT, 5.0)  # not 1 %
    refused = _audit(state).entries(flag="beta")[0]
    assert (refused.actor, refused.from_percentage, refused.to_percentage) == (
        "local-operator",
        10.0,
        5.0,
    )  # what the person confirmed
    # refused, not failed: nothing went wrong, the flag had moved (issue 24)
    assert refused.outcome is Outcome.REFUSED and "ted" in refused.detail
    _no_error(page)
    page.close()


def test_a_pasted_reason_over_the_limit_is_refused_visibly(chromium, dashboard):
    server, state = dashboard
    page = _flag_page(chromium, server, "gamma")
    page.get_by_role("button", name="Roll back to 50 %").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Roll back gamma in production: 100 % → 50 %")).to_be_visible(
        timeout=30_000
    )
    _reason(page, "x" * 3000)
    expect(
        dialog.get_by_text("The reason is 3,000 characters long; the limit is 2,000.")
    ).to_be_visible(timeout=10_000)
    confirm = dialog.get_by_role("button", name="Confirm")
    expect(confirm).to_be_disabled()
    assert len(dialog.get_by_label("Reason").input_value()) == 3000  # nothing was cut
    _reason(page, "short enough")
    expect(dialog.get_by_text("characters long")).to_have_count(0)
    expect(confirm).to_be_enabled()
    page.keyboard.press("Escape")
    assert _flag(state, "gamma") == (FlagState.ENABLED, 100.0)
    page.close()


def test_an_emergency_rollback_lists_its_flags_and_offers_restore(chromium, dashboard):
    server, state = dashboard
    before = {f: _flag(state, f, "staging") for f in ("alpha", "beta", "delta")}
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/?env=staging")
    page.get_by_role("button", name="Emergency rollback").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Emergency rollback in staging: 3 flags")).to_be_visible(
        timeout=30_000
    )
    _reason(page, "incident 12")
    dialog.get_by_role("button", name="Confirm: 🚨 Kill 3 flags in staging").click()
    expect(page.get_by_text("Applied: 3 flags changed in staging:")).to_be_visible(timeout=30_000)
    for flag, (_, pct) in before.items():
        link = page.get_by_role("link", name=f"{flag}: rollout {pct:g} % → disabled 0 %")
        expect(link).to_be_visible()
        href = link.get_attribute("href") or ""
        assert "flag_detail" in href and f"flag={flag}" in href and "env=staging" in href
        assert _flag(state, flag, "staging") == (FlagState.DISABLED, 0.0)

    page.get_by_role("button", name="restores all 3 flags").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("in staging: 3 flags")).to_be_visible(timeout=30_000)
    for flag, (_, pct) in before.items():
        expect(dialog.get_by_text(f"{flag}: disabled 0 % → rollout {pct:g} %")).to_be_visible()
    # a restore goes up: each flag's guards are shown; without metrics they fail, but
    # right after the rollback this is an undo within reason: they only warn, and the
    # operator confirms by typing the environment's name
    expect(dialog.get_by_text("none of its 3 flags has moved since")).to_be_visible()
    _reason(page, "the incident was elsewhere")
    confirm = dialog.get_by_role("button", name="Confirm: ↩️ Restore 3 flags")
    expect(confirm).to_be_disabled()
    typed = dialog.get_by_label("to confirm")
    typed.fill("staging")
    typed.press("Tab")
    expect(confirm).to_be_enabled()
    page.keyboard.press("Escape")
    assert {f: _flag(state, f, "staging") for f in before} == {
        f: (FlagState.DISABLED, 0.0) for f in before
    }
    _no_error(page)
    page.close()


def test_restore_from_the_audit_page_puts_the_flag_back(chromium, dashboard):
    server, state = dashboard
    backend = YamlFlagBackend(state / "feature_flags.yaml")
    advanced = execute_action(
        ActionRequest(Action.ADVANCE, "production", "too early", TED, flag="delta"),
        backend,
        _audit(state),
        lambda _s, _f: [GuardResult("data_fresh", True, 1.0, 120, "fresh")],
    )
    assert advanced.applied and _flag(state, "delta") == (FlagState.ROLLOUT, 25.0)
    record = advanced.audit[0].id
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(f"{server.url}/audit?id={record}")
    page.get_by_role("button", name=f"Restore #{record}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Restore #{record} delta in production: 25 % → 10 %")).to_be_visible(
        timeout=30_000
    )
    _reason(page, "advanced too early")
    typed = dialog.get_by_label("Type **delta** to confirm")  # a restore always asks the flag
    typed.fill("delta")
    typed.press("Tab")
    dialog.get_by_role("button", name="Confirm: ↩️ Restore delta to rollout 10 %").click()
    expect(page.get_by_text("Applied: delta: rollout 25 % → rollout 10 %")).to_be_visible(
        timeout=30_000
    )
    assert _flag(state, "delta") == (FlagState.ROLLOUT, 10.0)
    restored = _audit(state).entries(flag="delta")[0]
    assert restored.action == "restore" and restored.outcome is Outcome.APPLIED
    assert restored.reason == f"restore of #{record}: advanced too early"
    assert restored.environment == "production"
    _no_error(page)
    page.close()
