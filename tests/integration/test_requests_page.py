"""Four-eyes approval on the pages, in Streamlit's AppTest: alice asks (from the dialog's
runtime or a terminal), bob decides on the Requests page, and the overview, the flag
detail and the audit page show it. Real parts: the bundled flags in YAML, SQLite, the
demo simulator's traffic (so the guards pass when bob's approval applies the change).

Each person is a signed-in AppTest session (`[auth]` in its secrets, `st.user` set), with
roles from `ROLLOUT_ROLES`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from app.audit import AuditLog, Outcome
from app.flags.loader import load_config
from app.metrics_db.database import open_database
from app.metrics_db.schema import ChangeRequestRow
from app.rollout.action_model import Action, ActionRequest, ActionResult
from app.rollout.exit_codes import ExitCode
from app.rollout.roles import Identity, Role
from app.runtime import open_runtime
from app.settings import load_settings
from app.text import escape_markdown
from tests.support.approval_state import copy_state, fresh_heartbeats, simulated_state

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
ALICE, BOB, VIC = "alice@example.com", "bob@example.com", "vic@example.com"
ROLES = {ALICE: "operator", BOB: "operator", VIC: "viewer"}
AUTH = {
    "redirect_uri": "http://localhost:8599/oauth2callback",
    "cookie_secret": "apptest-cookie-secret",
    "client_id": "rollout-tests",
    "client_secret": "rollout-tests-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
PROD = "production"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_state(tmp_path_factory.mktemp("approval-template"))


@pytest.fixture
def state(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Iterator[Path]:
    copy_state(template, tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_ROLES", json.dumps(ROLES))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def page_as(email: str | None, page: str, **params: str) -> AppTest:
    """`page` as `email` sees it (None: nobody signed in, no sign-in configured)."""
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    if email is not None:
        at.secrets["auth"] = AUTH
        at.user = {"email": email, "is_logged_in": True}
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def ask(who: str = ALICE, flag: str = "ab_testing", **kwargs) -> ActionResult:
    """`who` advances `flag` in production, as the dialog's Confirm or a terminal does."""
    rt = open_runtime(load_settings())
    request = ActionRequest(
        Action.ADVANCE,
        PROD,
        kwargs.pop("reason", "steady for an hour"),
        Identity(who, Role.OPERATOR, "oidc"),
        flag=flag,
        **kwargs,
    )
    result = rt.execute(request)
    assert result.exit_code is ExitCode.REQUESTED, result.error
    assert result.change_request is not None
    return result


def percentage(state: Path, flag: str = "ab_testing") -> float:
    return load_config(state / "feature_flags.yaml", PROD).flags[flag].percentage


def audit(state: Path) -> AuditLog:
    return AuditLog(open_database(f"sqlite:///{state / 'metrics.db'}"), state / "journal.jsonl")


def text(at: AppTest) -> str:
    """Everything the page wrote, as read (markdown escapes removed)."""
    parts = [
        e.value
        for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning")
        for e in getattr(at, kind)
    ]
    parts += [e.value for e in at.error]
    return "\n".join(str(p) for p in parts).replace("\\", "").replace("**", "")


def said(at: AppTest, kind: str) -> list[str]:
    """The `kind` notices (success, warning, error) the page shows, each without the
    time of the decision it ends with."""
    return [re.sub(r" \(\d\d:\d\d:\d\d UTC\)$", "", e.value) for e in getattr(at, kind)]


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def headings(at: AppTest) -> list[str]:
    return [h.value for h in at.subheader]


def press(at: AppTest, label: str) -> AppTest:
    (button,) = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, at.exception
    return at


# -- the requester's side ----------------------------------------------------------


def test_alice_sees_her_request_asked_by_her_with_cancel_and_no_approve(state):
    change = ask().change_request
    assert percentage(state) == 25.0  # nothing applied
    at = page_as(ALICE, "requests")
    assert headings(at) == ["Waiting for you (0)", "Asked by you (1)", "Recently decided (0)"]
    shown = text(at)
    assert f"#{change.id} · production · advance ab_testing 25 % → 50 % · ⏳ pending" in shown
    assert "Reason: steady for an hour" in shown
    assert f"👤 `{ALICE}` asked just now · expires in 23 h 59 min" in shown  # code: never a link
    assert "Your own request: another operator must approve it." in shown
    assert [c.value for c in at.code] == ["ab_testing: rollout 25 % → rollout 50 %"]
    assert f"↩️ Cancel request #{change.id}" in buttons(at)
    assert not [b for b in buttons(at) if "Approve" in b or "Reject" in b]
    guards = at.dataframe[0].value
    assert list(guards["Guard"]) == [
        "data fresh",
        "error rate",
        "soak time",
        "dependencies",
        "exposure",
        "propagation",
    ]
    assert set(guards[""]) == {"✅"}


def test_the_dialog_in_production_says_a_second_operator_must_approve(state):
    at = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert "In production an advance waits for a second operator's approval" in text(at)
    press(at, "⏫ Advance to 50 %")
    shown = text(at)
    assert "A second operator must approve this." in shown
    assert "confirming creates a change request" in shown
    assert "Reason (required: the approver reads it; it goes to the audit log)" in [
        t.label for t in at.text_area
    ]
    assert "✋ Request approval: ab_testing 25 % → 50 %" in buttons(at)
    assert not [b for b in buttons(at) if b.startswith("Confirm")]


def test_rollback_and_kill_dialogs_in_production_do_not_wait(state):
    at = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    press(at, "⏬ Roll back to 10 %")
    assert "A second operator must approve this." not in text(at)
    assert "Confirm: ⏬ Roll back to 10 %" in buttons(at)
    assert not [b for b in buttons(at) if "Request approval" in b]
    at = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    press(at, "🛑 Kill (0 %, disabled)")
    assert "Confirm: 🛑 Kill (0 %, disabled)" in buttons(at)


def test_the_dialog_names_a_request_already_pending_for_the_flag(state):
    change = ask(BOB).change_request
    at = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert f"Change request #{change.id} by {BOB} waits for another operator's approval" in (
        text(at)
    )
    press(at, "⏫ Advance to 50 %")
    assert f"Change request #{change.id} by {BOB} already waits for ab_testing" in text(at)


# -- the approver's side -------------------------------------------------------------


def test_bob_approves_alices_request_and_the_flag_moves(state):
    change = ask().change_request
    at = page_as(BOB, "requests")
    assert headings(at) == ["Waiting for you (1)", "Asked by you (0)", "Recently decided (0)"]
    assert f"✅ Approve #{change.id}" in buttons(at)
    assert f"✖️ Reject #{change.id}" in buttons(at)
    at.text_input(key=f"comment-{change.id}").set_value("dashboards look fine")
    press(at, f"✅ Approve #{change.id}")
    assert said(at, "success") == [
        f"#{change.id} approved and applied: ab_testing: rollout 25 % → rollout 50 %"
    ]
    assert percentage(state) == 50.0
    at.run()  # the page's next refresh still says what the approval did
    assert said(at, "success") == [
        f"#{change.id} approved and applied: ab_testing: rollout 25 % → rollout 50 %"
    ]
    assert headings(at) == ["Waiting for you (0)", "Asked by you (0)", "Recently decided (1)"]
    shown = text(at)
    assert "✅ approved and applied" in shown
    assert f"Decision: approved by {BOB} just now: “dashboards look fine”" in shown
    steps = [(e.actor, str(e.outcome)) for e in reversed(audit(state).entries(flag="ab_testing"))]
    assert steps == [(ALICE, "requested"), (BOB, "approved"), (BOB, "applied")]
    # alice sees it decided, from her side
    mine = page_as(ALICE, "requests")
    assert headings(mine) == ["Waiting for you (0)", "Asked by you (0)", "Recently decided (1)"]
    assert f"approved by {BOB} just now: “dashboards look fine”" in text(mine)


def test_bob_must_say_why_he_rejects_and_alice_reads_it(state):
    change = ask().change_request
    at = page_as(BOB, "requests")
    press(at, f"✖️ Reject #{change.id}")  # no reason given
    (refused,) = said(at, "error")
    assert refused.startswith("why reject: ")
    assert headings(at)[0] == "Waiting for you (1)"  # still pending
    at.text_input(key=f"comment-{change.id}").set_value("wait for the Monday traffic")
    press(at, f"✖️ Reject #{change.id}")
    assert said(at, "success") == [f"#{change.id} rejected"]
    assert percentage(state) == 25.0
    seen = page_as(ALICE, "requests")
    assert headings(seen) == ["Waiting for you (0)", "Asked by you (0)", "Recently decided (1)"]
    shown = text(seen)
    assert "✖️ rejected" in shown
    assert f"Decision: rejected by {BOB} just now: “wait for the Monday traffic”" in shown


def test_alice_cancels_her_request(state):
    change = ask().change_request
    at = page_as(ALICE, "requests")
    press(at, f"↩️ Cancel request #{change.id}")
    assert said(at, "success") == [f"#{change.id} cancelled"]
    assert headings(at) == ["Waiting for you (0)", "Asked by you (0)", "Recently decided (1)"]
    assert f"Decision: cancelled by {ALICE} just now" in text(at)
    assert [str(e.outcome) for e in audit(state).entries(flag="ab_testing")] == [
        "cancelled",
        "requested",
    ]
    assert page_as(BOB, "requests").subheader[0].value == "Waiting for you (0)"


def test_a_request_whose_flag_changed_says_so_and_its_approval_applies_nothing(state):
    change = ask().change_request
    rt = open_runtime(load_settings())
    carol = Identity("carol@example.com", Role.OPERATOR, "cli")
    rolled = rt.execute(ActionRequest(Action.ROLLBACK, PROD, "errors", carol, flag="ab_testing"))
    assert rolled.applied  # 25 → 10 meanwhile: the safe direction never waits
    at = page_as(BOB, "requests")
    assert "ab_testing changed since this request was made: approving it now applies nothing" in (
        text(at)
    )
    press(at, f"✅ Approve #{change.id}")
    (warned,) = [w for w in said(at, "warning") if w.startswith(f"#{change.id} ")]
    assert warned.startswith(f"#{change.id} approved, not applied: changed since you looked")
    assert "carol@example.com" in warned
    assert percentage(state) == 10.0
    shown = text(at)
    assert "⚠️ approved, not applied" in shown
    assert (
        "approved, not applied: changed since you looked: ab_testing is now rollout 10 %" in shown
    )


def test_flag_detail_marks_a_request_stale_once_the_flag_moved(state):
    change = ask().change_request
    flag = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert f"Change request #{change.id}" in text(flag) and "is stale" not in text(flag)
    rt = open_runtime(load_settings())
    carol = Identity("carol@example.com", Role.OPERATOR, "cli")
    assert rt.execute(
        ActionRequest(Action.ROLLBACK, PROD, "errors", carol, flag="ab_testing")
    ).applied
    flag = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    (stale,) = [w.value.replace("\\", "") for w in flag.warning if f"#{change.id}" in w.value]
    assert "is stale: ab_testing changed since this request was made" in stale
    assert "waits for another operator" not in text(flag)


def test_the_requester_reads_a_rejection_on_the_overview_and_the_flag_detail(state):
    change = ask().change_request
    at = page_as(BOB, "requests")
    at.text_input(key=f"comment-{change.id}").set_value("not now: wait until metrics are wired")
    press(at, f"✖️ Reject #{change.id}")
    said_no = (
        f"Your change request #{change.id} was rejected by {BOB} just now: "
        "“not now: wait until metrics are wired”"
    )
    overview = page_as(ALICE, "overview", env=PROD)
    assert [w for w in overview.warning if said_no in w.value.replace("\\", "")]
    flag = page_as(ALICE, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert [w for w in flag.warning if said_no in w.value.replace("\\", "")]
    # only the requester is told, and only of her flags
    assert not [w for w in page_as(BOB, "overview", env=PROD).warning if "Your change" in w.value]
    other = page_as(ALICE, "flag_detail", env=PROD, flag="canary_deployment", refresh="off")
    assert not [w for w in other.warning if "Your change" in w.value]


def test_an_approval_is_bound_to_the_request_as_displayed(state):
    """The request's content changes between display and click: the approval is refused."""
    change = ask().change_request
    at = page_as(BOB, "requests")
    engine = open_database(f"sqlite:///{state / 'metrics.db'}")
    with engine.begin() as connection:
        connection.execute(
            update(ChangeRequestRow)
            .where(ChangeRequestRow.id == int(change.id))
            .values(versions={"ab_testing": "tampered"})
        )
    press(at, f"✅ Approve #{change.id}")
    assert [w for w in said(at, "warning") if "looked at" in w] == [
        f"#{change.id} is not the request you looked at"
    ]
    assert percentage(state) == 25.0


def test_nobody_can_approve_twice_from_two_stale_tabs(state):
    change = ask().change_request
    first, second = page_as(BOB, "requests"), page_as(BOB, "requests")
    press(first, f"✅ Approve #{change.id}")
    press(second, f"✅ Approve #{change.id}")  # the same approval again: its outcome
    assert said(second, "success") == [f"#{change.id} is already applied by {BOB}"]
    assert percentage(state) == 50.0
    outcomes = [str(e.outcome) for e in audit(state).entries(flag="ab_testing")]
    assert outcomes.count("applied") == 1


def test_an_override_request_offers_approve_to_admins_only(state, monkeypatch):
    monkeypatch.setenv("ROLLOUT_ROLES", json.dumps({**ROLES, "ada@example.com": "admin"}))
    # phase1_config_externalization fails its error-rate guard in the simulated traffic
    rt = open_runtime(load_settings())
    root = Identity("root@example.com", Role.ADMIN, "oidc")
    result = rt.execute(
        ActionRequest(
            Action.ADVANCE,
            PROD,
            "known noise",
            root,
            flag="phase1_config_externalization",
            override_guards=True,
        )
    )
    assert result.exit_code is ExitCode.REQUESTED and result.change_request is not None
    number = result.change_request.id
    operator = page_as(BOB, "requests")
    assert "It overrides failed guards: only an admin may approve it." in text(operator)
    assert f"✅ Approve #{number}" not in buttons(operator)
    assert f"✖️ Reject #{number}" in buttons(operator)
    assert "Guard report at request time: some guards FAILED (an override)" in [
        e.label for e in operator.expander
    ]
    admin = page_as("ada@example.com", "requests")
    assert f"✅ Approve #{number}" in buttons(admin)


# -- who sees what -------------------------------------------------------------------


def test_a_viewer_lists_the_requests_without_any_button(state):
    change = ask().change_request
    for who in (None, VIC):
        at = page_as(who, "requests")
        assert headings(at) == ["Waiting for an operator (1)", "Recently decided (0)"]
        assert f"#{change.id} · production · advance ab_testing" in text(at)
        assert not [b for b in buttons(at) if "#" in b]
        assert "Another operator" not in text(at)
    assert "Read-only: approving, rejecting or cancelling needs a signed-in operator." in text(
        page_as(None, "requests")
    )
    assert "You are a viewer: deciding on a request needs the operator role." in text(
        page_as(VIC, "requests")
    )


def test_a_link_to_an_unknown_request_says_so(state):
    at = page_as(BOB, "requests", id="4242")
    assert "No change request #4242." in text(at)


def test_in_demo_mode_the_page_explains_that_no_environment_needs_approval(state, monkeypatch):
    monkeypatch.setenv("ROLLOUT_DEMO", "true")
    at = page_as(None, "requests")
    (explained,) = [i.value for i in at.info if "No environment needs approval" in i.value]
    assert "ROLLOUT_APPROVAL_ENVIRONMENTS" in explained and "Demo mode" in explained
    flag = page_as(None, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    press(flag, "⏫ Advance to 50 %")
    assert "A second operator must approve this." not in text(flag)
    assert "Confirm: ⏫ Advance to 50 %" in buttons(flag)


def test_without_the_database_the_page_says_requests_are_unavailable(state, monkeypatch):
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    at = page_as(BOB, "requests")
    (error,) = [e.value for e in at.error]
    assert error.startswith("Change requests cannot be shown: change requests need the metrics")
    assert "Rollback, kill and emergency rollback still work" in error
    overview = page_as(BOB, "overview")
    assert "Pending change requests are not shown" in text(overview)


# -- elsewhere: overview, flag detail, audit -------------------------------------------


def test_the_overview_marks_the_flag_with_a_pending_request(state):
    assert "Request" not in page_as(BOB, "overview").dataframe[0].value.columns  # none yet
    change = ask().change_request
    at = page_as(BOB, "overview")
    table = at.dataframe[0].value
    table.index = [url.rsplit("flag=", 1)[1] for url in table["Flag"]]
    assert table.loc["ab_testing", "Request"] == f"⏳ #{change.id} → 50 %"
    assert table.loc["ab_testing", "Rollout %"] == 25.0
    assert table.loc["canary_deployment", "Request"] == ""
    assert f"1 change request waits for approval in production: #{change.id} ab_testing" in text(at)
    staging = page_as(BOB, "overview", env="staging")
    assert "Request" not in staging.dataframe[0].value.columns  # nothing pending there


def test_the_flag_detail_shows_the_pending_request_and_its_steps_in_the_history(state):
    change = ask().change_request
    at = page_as(BOB, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert (
        f"Change request #{change.id} by {ALICE} waits for another operator's approval: "
        "ab_testing: rollout 25 % → rollout 50 %" in text(at)
    )
    bob = page_as(BOB, "requests")
    press(bob, f"✅ Approve #{change.id}")
    at = page_as(BOB, "flag_detail", env=PROD, flag="ab_testing", refresh="off")
    assert "waits for another operator's approval" not in text(at)
    history = at.dataframe[-1].value
    assert list(reversed(list(zip(history["Actor"], history["Outcome"], strict=True)))) == [
        (ALICE, "requested"),
        (BOB, "approved"),
        (BOB, "applied"),
    ]
    assert history["Reason"].iloc[0] == (f"request #{change.id} by {ALICE}: steady for an hour")


def test_the_audit_page_filters_by_the_request_outcomes(state):
    change = ask().change_request
    press(page_as(BOB, "requests"), f"✅ Approve #{change.id}")
    fresh_heartbeats(state)  # the instances load the new config (propagation guard)
    ask(flag="canary_deployment")
    at = page_as(BOB, "audit")
    offered = at.multiselect[0].options
    for outcome in ("requested", "approved", "rejected", "cancelled", "expired"):
        assert outcome in offered
    at.multiselect[0].set_value([Outcome.REQUESTED]).run()
    table = at.dataframe[0].value
    assert list(table["Outcome"]) == ["requested", "requested"]
    assert set(table["Flag"]) == {"ab_testing", "canary_deployment"}
    assert at.query_params["outcome"] == "requested"
    at.multiselect[0].set_value([Outcome.APPROVED, Outcome.APPLIED]).run()
    table = at.dataframe[0].value
    assert list(zip(table["Actor"], table["Outcome"], strict=True)) == [
        (BOB, "applied"),
        (BOB, "approved"),
    ]


def test_an_audit_record_of_a_request_links_to_it(state):
    change = ask().change_request
    (entry,) = audit(state).entries(flag="ab_testing")
    at = page_as(BOB, "audit", id=entry.id)
    links = [(link.proto.label, link.proto.page) for link in at.get("page_link")]
    assert (f"Change request #{change.id} on the Requests page", "requests") in [
        (label, page.rsplit("/", 1)[-1].removesuffix(".py")) for label, page in links
    ]


def test_a_hostile_reason_and_comment_are_shown_literally(state):
    hostile = "**bold** <b>html</b> [x](javascript:alert(1)) $x^2$ :red[red] # head"
    change = ask(reason=hostile).change_request
    at = page_as(BOB, "requests")
    assert f"**Reason:** {escape_markdown(hostile)}" in [m.value for m in at.markdown]
    at.text_input(key=f"comment-{change.id}").set_value(hostile)
    press(at, f"✖️ Reject #{change.id}")
    decisions = [m.value for m in at.markdown if m.value.startswith("**Decision:**")]
    assert decisions == [
        f"**Decision:** {escape_markdown(f'rejected by {BOB} just now: “{hostile}”')}"
    ]
