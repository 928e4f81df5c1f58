"""What the Requests page shows of change requests and which buttons each person gets
(app/services/requests.py): the lists, the words, the badges; no Streamlit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.approvals.model import ChangeRequest, RequestStatus
from app.approvals.service import EXPIRY_ACTOR, Decision, request_of_reason
from app.flags.model import FlagState
from app.rollout.action_model import Action, Transition
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from app.services.requests import (
    APPROVAL_SETTING,
    approval_off_text,
    decision_notice,
    decision_text,
    expiry_text,
    guards_at_request,
    pending_badges,
    pending_summary,
    permissions,
    requests_board,
    stale_text,
)
from app.ui.action_dialog import guard_table

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ALICE = Identity("alice@example.com", Role.OPERATOR, "oidc")
BOB = Identity("bob@example.com", Role.OPERATOR, "oidc")
ADA = Identity("ada@example.com", Role.ADMIN, "oidc")
VIC = Identity("vic@example.com", Role.VIEWER, "oidc")
ANONYMOUS = Identity("anonymous", Role.VIEWER, "anonymous")
R = FlagState.ROLLOUT


def request(
    number: int,
    requester: str = ALICE.name,
    *,
    flag: str = "ab_testing",
    asked: timedelta = timedelta(minutes=5),
    status: RequestStatus = RequestStatus.PENDING,
    **changes,
) -> ChangeRequest:
    created = NOW - asked
    base = ChangeRequest(
        created_at=created,
        expires_at=created + timedelta(hours=24),
        requester=requester,
        environment="production",
        action=Action.ADVANCE,
        reason="steady for an hour",
        transitions=(Transition(flag, R, 25.0, R, 50.0),),
        versions={flag: "v1"},
        idempotency_key=f"key-{number}",
        flag=flag,
        guards=(
            {
                "name": "error_rate",
                "passed": True,
                "value": 0.003,
                "threshold": 0.01,
                "detail": "0.30 % failed",
                "window": "15m",
            },
            {
                "name": "soak_time",
                "passed": True,
                "value": 1800.0,
                "threshold": 900.0,
                "detail": "30 min at 25 %",
                "window": "",
            },
        ),
        status=status,
        id=str(number),
    )
    return replace(base, **changes)


# -- who may do what -------------------------------------------------------------


def test_an_operator_may_approve_or_reject_someone_elses_request():
    allowed = permissions(request(1), BOB)
    assert (allowed.approve, allowed.reject, allowed.cancel) == (True, True, False)
    assert allowed.why_not == ""


def test_nobody_is_offered_approve_on_their_own_request_but_may_cancel_it():
    for me in (ALICE, Identity(" ALICE@Example.com ", Role.ADMIN, "oidc")):
        allowed = permissions(request(1), me)
        assert (allowed.approve, allowed.reject, allowed.cancel) == (False, False, True)
        assert "another operator must approve it" in allowed.why_not


def test_a_viewer_is_offered_nothing_and_told_why():
    for viewer in (VIC, ANONYMOUS):
        allowed = permissions(request(1), viewer)
        assert (allowed.approve, allowed.reject, allowed.cancel) == (False, False, False)
        assert allowed.why_not == "Deciding on a request needs the operator role."


def test_an_override_is_approved_by_admins_only_but_an_operator_may_reject_it():
    override = request(1, override=True)
    operator = permissions(override, BOB)
    assert (operator.approve, operator.reject) == (False, True)
    assert "only an admin may approve it" in operator.why_not
    assert permissions(override, ADA).approve


@pytest.mark.parametrize("status", [s for s in RequestStatus if s is not RequestStatus.PENDING])
def test_a_decided_request_offers_no_button(status):
    allowed = permissions(request(1, status=status), BOB)
    assert not (allowed.approve or allowed.reject or allowed.cancel)


# -- the three lists -------------------------------------------------------------


def test_the_board_splits_waiting_mine_and_recently_decided_newest_first():
    requests = [
        request(1, BOB.name, asked=timedelta(hours=3)),
        request(2, ALICE.name, asked=timedelta(hours=2)),
        request(3, BOB.name, asked=timedelta(minutes=1)),
        request(
            4,
            BOB.name,
            status=RequestStatus.REJECTED,
            decided_by=ALICE.name,
            decided_at=NOW - timedelta(minutes=30),
            comment="wait for Monday",
        ),
        request(
            5,
            BOB.name,
            status=RequestStatus.APPLIED,
            decided_by=ALICE.name,
            decided_at=NOW - timedelta(days=8),  # too old for "recently"
        ),
    ]
    board = requests_board(requests, ALICE, NOW)
    assert board.waiting_heading == "Waiting for you"
    assert [c.id for c in board.waiting] == ["3", "1"]
    assert [c.id for c in board.mine] == ["2"]
    assert [c.id for c in board.decided] == ["4"]
    assert board.decided[0].decided == "rejected by alice@example.com 30 min ago: “wait for Monday”"
    assert board.waiting[0].allowed.approve and board.mine[0].allowed.cancel
    bobs = requests_board(requests, BOB, NOW)
    assert [c.id for c in bobs.waiting] == ["2"] and [c.id for c in bobs.mine] == ["3", "1"]


def test_a_viewer_sees_every_pending_request_waiting_for_an_operator():
    board = requests_board([request(1), request(2, BOB.name)], ANONYMOUS, NOW)
    assert board.waiting_heading == "Waiting for an operator"
    assert [c.id for c in board.waiting] == ["2", "1"] and board.mine == ()
    assert not any(c.allowed.approve or c.allowed.reject for c in board.waiting)


def test_recently_decided_is_capped():
    decided = [
        request(
            n,
            status=RequestStatus.CANCELLED,
            decided_by=ALICE.name,
            decided_at=NOW - timedelta(minutes=n),
            asked=timedelta(minutes=n + 1),
        )
        for n in range(1, 30)
    ]
    board = requests_board(decided, BOB, NOW, decided_limit=20)
    assert len(board.decided) == 20 and board.decided[0].id == "1"


def test_a_card_title_names_id_environment_action_flag_and_percentages():
    (card,) = requests_board([request(12)], BOB, NOW).waiting
    assert card.title == "#12 · production · advance ab_testing 25 % → 50 %"
    assert card.status == "⏳ pending"
    assert card.asked.startswith("alice@example.com asked 5 min ago · expires in 23 h 55 min")
    override = requests_board([request(13, override=True)], BOB, NOW).waiting[0]
    assert override.title.endswith("(overriding failed guards)")


def test_a_card_of_several_flags_counts_them():
    two = request(
        7,
        action=Action.RESTORE,
        transitions=(
            Transition("a", FlagState.DISABLED, 0.0, R, 10.0),
            Transition("b", FlagState.DISABLED, 0.0, R, 5.0),
        ),
        versions={"a": "1", "b": "2"},
    )
    (card,) = requests_board([two], BOB, NOW).waiting
    assert card.title == "#7 · production · restore of 2 flags"


# -- words -----------------------------------------------------------------------


def test_expiry_says_age_time_left_and_the_instant():
    assert expiry_text(request(1), NOW) == (
        "asked 5 min ago · expires in 23 h 55 min (2026-12-03 11:55 UTC)"
    )
    late = request(1, asked=timedelta(hours=25))
    assert expiry_text(late, NOW) == "asked 25 h ago · expired at 2026-12-02 11:00 UTC"


def test_decision_text_for_every_ending():
    at = NOW - timedelta(minutes=3)

    def said(status, by=BOB.name, comment=""):
        return decision_text(
            request(1, status=status, decided_by=by, decided_at=at, comment=comment), NOW
        )

    assert said(RequestStatus.APPLIED, comment="dashboards fine") == (
        "approved by bob@example.com 3 min ago: “dashboards fine”"
    )
    assert said(RequestStatus.APPLIED) == "approved by bob@example.com 3 min ago"
    assert said(RequestStatus.CANCELLED, ALICE.name, "cancelled") == (
        "cancelled by alice@example.com 3 min ago"
    )
    assert said(RequestStatus.EXPIRED, EXPIRY_ACTOR, "not decided in time") == "expired 3 min ago"
    assert said(RequestStatus.REJECTED, comment="not on a Friday") == (
        "rejected by bob@example.com 3 min ago: “not on a Friday”"
    )


def test_a_failed_apply_keeps_its_detail_on_the_card():
    detail = (
        "approved, not applied: changed since you looked: ab_testing is now rollout 10 % "
        "(carol). Nothing changed; ask for a fresh request"
    )
    failed = request(
        1,
        status=RequestStatus.FAILED,
        decided_by=BOB.name,
        decided_at=NOW - timedelta(minutes=1),
        detail=detail,
    )
    (card,) = requests_board([failed], ALICE, NOW).decided
    assert card.status == "⚠️ approved, not applied"
    assert card.detail == detail
    assert card.decided == "approved by bob@example.com 1 min ago"


def test_a_pending_request_whose_flag_changed_says_approving_applies_nothing():
    change = request(1)
    assert stale_text(change, {"ab_testing": "v1"}) == ""
    assert stale_text(change, {"ab_testing": "v2"}).startswith(
        "ab_testing changed since this request was made: approving it now applies nothing"
    )
    (card,) = requests_board([change], BOB, NOW, {"production": {"ab_testing": "v2"}}).waiting
    assert "changed since" in card.stale
    decided = replace(change, status=RequestStatus.REJECTED)
    assert stale_text(decided, {"ab_testing": "v2"}) == ""


def test_the_guard_report_at_request_time_reads_like_the_dialogs():
    table = guard_table(guards_at_request(request(1)))
    assert list(table["Guard"]) == ["error rate", "soak time"]
    assert list(table["Value"]) == ["0.30 %", "30 min"]
    assert list(table["Threshold"]) == ["≤ 1 %", "≥ 15 min"]
    assert list(table[""]) == ["✅", "✅"]


def test_a_counted_guard_keeps_its_whole_through_the_stored_request():
    dependencies = GuardResult("dependencies", False, 1, 0.99, "b unstable", of=2)
    stored = request(1, guards=(dependencies.as_json(),))
    table = guard_table(guards_at_request(stored))
    assert list(table["Value"]) == ["1 of 2 dependencies"]
    assert list(table[""]) == ["❌"]


# -- the overview's marker -------------------------------------------------------


def test_pending_badges_name_the_request_and_where_it_goes():
    assert pending_badges({"ab_testing": request(12)}) == {"ab_testing": "⏳ #12 → 50 %"}
    assert pending_badges({}) == {}


def test_pending_summary_counts_requests_not_flags():
    restore = request(
        9,
        transitions=(
            Transition("a", FlagState.DISABLED, 0.0, R, 10.0),
            Transition("b", FlagState.DISABLED, 0.0, R, 5.0),
        ),
    )
    one = pending_summary({"ab_testing": request(12)}, "production")
    assert one == "1 change request waits for approval in production: #12 ab_testing"
    two = pending_summary({"a": restore, "b": restore, "ab_testing": request(12)}, "production")
    assert two.startswith("2 change requests wait for approval in production: ")
    assert "#9 a + b" in two and "#12 ab_testing" in two
    assert pending_summary({}, "production") == ""


# -- decisions and the setting ---------------------------------------------------


def test_a_decision_is_shown_with_its_own_message_in_the_right_colour():
    done = decision_notice(Decision(ExitCode.DONE, "#12 approved and applied"))
    assert (done.kind, done.text) == ("success", "#12 approved and applied")
    stale = decision_notice(Decision(ExitCode.CONFLICT, "#12 is not the request you looked at"))
    assert stale.kind == "warning"
    refused = decision_notice(Decision(ExitCode.REFUSED, "#12 is already rejected by bob"))
    assert (refused.kind, refused.text) == ("error", "#12 is already rejected by bob")


def test_without_approval_environments_the_page_names_the_setting():
    demo = approval_off_text(["production", "staging"], demo=True)
    assert APPROVAL_SETTING in demo and "Demo mode" in demo
    assert demo.startswith("No environment needs approval")
    empty = approval_off_text(["production"], demo=False)
    assert f"`{APPROVAL_SETTING}` is an empty list" in empty


def test_an_audit_record_of_a_request_names_its_request():
    assert request_of_reason("request #12: steady for an hour") == "12"
    assert request_of_reason("request #12 by alice@example.com: steady") == "12"
    assert request_of_reason("restore of #12: oops") is None
    assert request_of_reason("see request #12: not at the start") is None
    assert request_of_reason("request #12abc: no") is None


def test_just_now_under_ten_seconds():
    fresh = request(1, asked=timedelta(seconds=3))
    assert expiry_text(fresh, NOW).startswith("asked just now · expires in 23 h 59 min")
    decided = request(
        1,
        status=RequestStatus.CANCELLED,
        decided_by=ALICE.name,
        decided_at=NOW - timedelta(seconds=9),
    )
    assert decision_text(decided, NOW) == "cancelled by alice@example.com just now"
