"""Four-eyes approval end to end on real parts: flags in YAML files and in SQL, change
requests and the audit in SQLite and PostgreSQL.

alice asks, bob approves: every refusal the issue names is played here, each asserting
the flag as it is afterwards and the audit as the Audit page shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.approvals import Approvals, ChangeRequest, RequestStatus, RequestStore
from app.audit import AuditLog, Outcome
from app.flags.backend import FlagBackend
from app.flags.loader import BUNDLED_CONFIG, load_config
from app.flags.sql_backend import SqlFlagBackend
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest, ActionResult
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from tests.support.bundled import copy_bundled_config

ALICE = Identity("alice@example.com", Role.OPERATOR, "oidc")
BOB = Identity("bob@example.com", Role.OPERATOR, "oidc")
CAROL = Identity("carol@example.com", Role.OPERATOR, "oidc")
ADA = Identity("ada@example.com", Role.ADMIN, "oidc")
VIC = Identity("vic@example.com", Role.VIEWER, "oidc")
PROD, STAGING = "production", "staging"
FLAG = "ab_testing"  # production: rollout at 25 %


def passing(_snapshot, _flag):
    return [GuardResult("data_fresh", True, 1.0, 120, "fresh")]


def failing(_snapshot, _flag):
    return [GuardResult("error_rate", False, 0.07, 0.01, "7 % failed")]


@dataclass
class World:
    backend: FlagBackend
    audit: AuditLog
    approvals: Approvals
    guards: list[Callable[..., list[GuardResult]]]
    clock: list[datetime]

    def execute(self, request: ActionRequest) -> ActionResult:
        return execute_action(
            request,
            self.backend,
            self.audit,
            lambda snapshot, flag: self.guards[0](snapshot, flag),
            now=lambda: self.clock[0],
            approvals=self.approvals,
        )

    def act(self, who: Identity, action: Action = Action.ADVANCE, **kwargs) -> ActionResult:
        values = {"environment": PROD, "reason": "steady for an hour", "flag": FLAG}
        return self.execute(ActionRequest(action=action, identity=who, **(values | kwargs)))

    def approve(self, who: Identity, request_id: str, **kwargs):
        return self.approvals.approve(request_id, who, self.execute, **kwargs)

    def percentage(self, flag: str = FLAG, environment: str = PROD) -> float:
        return self.backend.load(environment).flag(flag).percentage

    def steps(self, flag: str = FLAG) -> list[tuple[str, str, str]]:
        """(actor, action, outcome), oldest first, as the Audit page lists them."""
        entries = self.audit.entries(flag=flag, environment=PROD)
        return [(e.actor, e.action, str(e.outcome)) for e in reversed(entries)]


def _world(backend: FlagBackend, engine: Engine | None, tmp_path: Path) -> World:
    audit = AuditLog(engine, tmp_path / "journal.jsonl")
    clock = [datetime.now(UTC)]
    approvals = Approvals(
        RequestStore(engine), audit, {PROD}, timedelta(hours=24), now=lambda: clock[0]
    )
    return World(backend, audit, approvals, [passing], clock)


def _yaml_backend(tmp_path: Path) -> YamlFlagBackend:
    return YamlFlagBackend(copy_bundled_config(tmp_path))


def _sql_backend(engine: Engine) -> SqlFlagBackend:
    backend = SqlFlagBackend(engine)
    for environment in (PROD, STAGING):
        backend.import_config(environment, load_config(BUNDLED_CONFIG, environment), replace=True)
    return backend


@pytest.fixture(params=["yaml", "sql"])
def world(request, tmp_path: Path) -> World:
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    backend = _yaml_backend(tmp_path) if request.param == "yaml" else _sql_backend(engine)
    return _world(backend, engine, tmp_path)


def requested(world: World, who: Identity = ALICE, **kwargs) -> ChangeRequest:
    result = world.act(who, **kwargs)
    assert result.exit_code is ExitCode.REQUESTED, result.error
    assert result.change_request is not None
    return result.change_request


# -- asking --------------------------------------------------------------------


def test_an_advance_in_production_becomes_a_request_with_its_diff_and_evidence(world):
    change = requested(world)
    assert world.percentage() == 25.0  # nothing applied
    assert change.status is RequestStatus.PENDING
    assert change.diff == "ab_testing: rollout 25 % → rollout 50 %"
    assert change.requester == ALICE.name and change.reason == "steady for an hour"
    assert change.versions[FLAG] == world.backend.load(PROD).versions[FLAG]
    assert [g["name"] for g in change.guards] == ["data_fresh"]
    assert change.expires_at - change.created_at == timedelta(hours=24)
    assert world.steps() == [(ALICE.name, "advance", "requested")]
    (entry,) = world.audit.entries(flag=FLAG)
    assert entry.reason == f"request #{change.id}: steady for an hour"
    assert entry.guards and entry.guards[0]["name"] == "data_fresh"


def test_a_double_click_on_request_makes_one_request(world):
    first = world.act(ALICE, idempotency_key="click-1")
    second = world.act(ALICE, idempotency_key="click-1")
    assert first.change_request is not None and second.change_request is not None
    assert first.change_request.id == second.change_request.id
    assert len(world.approvals.requests(statuses=[RequestStatus.PENDING])) == 1
    assert world.steps() == [(ALICE.name, "advance", "requested")]


def test_the_safe_direction_never_waits(world):
    rolled = world.act(ALICE, Action.ROLLBACK)
    assert rolled.applied and world.percentage() == 10.0
    killed = world.act(ALICE, Action.KILL, flag="canary_deployment")
    assert killed.applied and world.percentage("canary_deployment") == 0.0
    emergency = world.act(ALICE, Action.EMERGENCY, flag=None)
    assert emergency.applied and emergency.change_request is None
    assert world.approvals.requests() == []


def test_an_environment_without_approval_applies_at_once(world):
    result = world.act(ALICE, environment=STAGING)
    assert result.applied and result.change_request is None


def test_failing_guards_are_refused_not_requested(world):
    world.guards[0] = failing
    result = world.act(ALICE)
    assert result.exit_code is ExitCode.REFUSED and result.change_request is None
    assert world.approvals.requests() == []


def test_an_override_is_itself_a_request_that_only_an_admin_approves(world):
    world.guards[0] = failing
    change = requested(world, ADA, override_guards=True)
    assert change.override
    refused = world.approve(BOB, change.id)
    assert refused.exit_code is ExitCode.REFUSED and "only an admin" in refused.message
    assert world.percentage() == 25.0
    other_admin = Identity("root@example.com", Role.ADMIN, "oidc")
    assert world.approve(other_admin, change.id).ok
    assert world.percentage() == 50.0


def test_a_viewer_can_neither_ask_nor_approve(world):
    asked = world.act(VIC)
    assert asked.exit_code is ExitCode.REFUSED and asked.change_request is None
    change = requested(world)
    refused = world.approve(VIC, change.id)
    assert refused.exit_code is ExitCode.REFUSED and "viewer" in refused.message
    assert world.percentage() == 25.0
    assert world.approvals.store.get(change.id).status is RequestStatus.PENDING


# -- approving -----------------------------------------------------------------


def test_bob_approves_alices_request_and_the_audit_tells_it_with_both_names(world):
    change = requested(world)
    decision = world.approve(BOB, change.id, comment="dashboards look fine")
    assert decision.ok, decision.message
    assert world.percentage() == 50.0
    assert world.approvals.store.get(change.id).status is RequestStatus.APPLIED
    assert world.steps() == [
        (ALICE.name, "advance", "requested"),
        (BOB.name, "advance", "approved"),
        (BOB.name, "advance", "applied"),
    ]
    applied = world.audit.latest_applied(PROD, FLAG)
    assert applied.reason == f"request #{change.id} by {ALICE.name}: steady for an hour"
    approved = [e for e in world.audit.entries(flag=FLAG) if e.outcome is Outcome.APPROVED]
    assert approved[0].reason == f"request #{change.id}: dashboards look fine"


def test_the_requester_can_never_approve_their_own_request(world):
    change = requested(world)
    for me in (ALICE, Identity("  ALICE@example.COM ", Role.ADMIN, "cli")):
        refused = world.approve(me, change.id)
        assert refused.exit_code is ExitCode.REFUSED
        assert "your own request" in refused.message
    assert world.percentage() == 25.0
    assert world.approvals.store.get(change.id).status is RequestStatus.PENDING


def test_a_forged_approval_is_refused_inside_the_action(world):
    """Calling the action with a request id, without the approval step, applies nothing."""
    change = requested(world)
    forged = ActionRequest(
        action=Action.ADVANCE,
        environment=PROD,
        reason="trust me",
        identity=ALICE,
        flag=FLAG,
        idempotency_key=f"change-request-{change.id}",
        confirmed=change.transitions,
        approved_request=change.id,
    )
    result = world.execute(forged)
    assert result.exit_code is ExitCode.REFUSED and not result.applied
    assert "pending, not approved" in (result.error or "")
    bob_forges = world.execute(
        ActionRequest(**{**forged.__dict__, "identity": BOB, "reason": "trust me"})
    )
    assert bob_forges.exit_code is ExitCode.REFUSED
    assert world.percentage() == 25.0


def test_a_request_whose_flag_changed_before_approval_applies_nothing_and_says_why(world):
    change = requested(world)
    assert world.act(CAROL, Action.ROLLBACK).applied  # 25 → 10 by carol meanwhile
    decision = world.approve(BOB, change.id)
    assert decision.exit_code is ExitCode.CONFLICT
    assert world.percentage() == 10.0
    failed = world.approvals.store.get(change.id)
    assert failed.status is RequestStatus.FAILED
    assert "ab_testing is now rollout 10 %" in failed.detail
    assert CAROL.name in failed.detail and "fresh request" in failed.detail


def test_guards_that_fail_at_approval_time_apply_nothing(world):
    change = requested(world)
    world.guards[0] = failing
    decision = world.approve(BOB, change.id)
    assert decision.exit_code is ExitCode.REFUSED
    assert "guards failed: error_rate" in decision.message
    assert world.percentage() == 25.0
    assert world.approvals.store.get(change.id).status is RequestStatus.FAILED


def test_an_expired_request_cannot_be_approved(world):
    change = requested(world)
    world.clock[0] += timedelta(hours=24, seconds=1)
    decision = world.approve(BOB, change.id)
    assert decision.exit_code is ExitCode.REFUSED and "expired" in decision.message
    assert world.percentage() == 25.0
    assert world.approvals.store.get(change.id).status is RequestStatus.EXPIRED
    assert world.steps()[-1] == ("rollout-dashboard (expiry)", "advance", "expired")


def test_listing_expires_what_is_due_once(world):
    requested(world)
    world.clock[0] += timedelta(hours=25)
    assert world.approvals.expire_due() == 1
    assert world.approvals.expire_due() == 0
    assert [s[2] for s in world.steps()] == ["requested", "expired"]


def test_the_same_approval_submitted_twice_applies_once(world):
    change = requested(world)
    first = world.approve(BOB, change.id)
    again = world.approve(BOB, change.id)
    assert first.ok and again.ok and "already applied" in again.message
    assert world.percentage() == 50.0
    assert [s[2] for s in world.steps()] == ["requested", "approved", "applied"]


def test_reject_needs_a_reason_and_is_never_the_requesters(world):
    change = requested(world)
    assert world.approvals.reject(change.id, BOB, "  ").exit_code is ExitCode.USAGE
    assert world.approvals.reject(change.id, ALICE, "no").exit_code is ExitCode.REFUSED
    rejected = world.approvals.reject(change.id, BOB, "wait for the Monday traffic")
    assert rejected.ok
    stored = world.approvals.store.get(change.id)
    assert (stored.status, stored.decided_by, stored.comment) == (
        RequestStatus.REJECTED,
        BOB.name,
        "wait for the Monday traffic",
    )
    late = world.approve(CAROL, change.id)
    assert late.exit_code is ExitCode.REFUSED and "already rejected by bob" in late.message
    assert world.percentage() == 25.0


def test_rejecting_or_cancelling_what_one_approved_is_refused_not_done(world):
    change = requested(world)
    assert world.approve(BOB, change.id).ok
    assert world.approvals.reject(change.id, BOB, "changed my mind").exit_code is ExitCode.REFUSED
    assert world.approvals.cancel(change.id, ALICE).exit_code is ExitCode.REFUSED
    assert world.percentage() == 50.0


def test_one_os_account_is_one_pair_of_eyes_whatever_name_it_declares(world):
    asked_as_alice = Identity(ALICE.name, Role.OPERATOR, "cli", account="ops")
    change = requested(world, asked_as_alice)
    assert change.requester_account == "ops"
    same_terminal = Identity("bob", Role.OPERATOR, "cli", account="ops")
    refused = world.approve(same_terminal, change.id)
    assert refused.exit_code is ExitCode.REFUSED and "OS account ops" in refused.message
    assert world.approvals.reject(change.id, same_terminal, "no").exit_code is ExitCode.REFUSED
    assert world.percentage() == 25.0
    assert world.approve(Identity("bob", Role.OPERATOR, "cli", account="bob"), change.id).ok


def test_a_cancel_comment_is_checked_like_a_reason(world):
    change = requested(world)
    refused = world.approvals.cancel(change.id, ALICE, "oops\x1b[2J")
    assert refused.exit_code is ExitCode.USAGE
    assert world.approvals.store.get(change.id).status is RequestStatus.PENDING


def test_only_the_requester_cancels(world):
    change = requested(world)
    refused = world.approvals.cancel(change.id, BOB)
    assert refused.exit_code is ExitCode.REFUSED and "only they can cancel" in refused.message
    assert world.approvals.cancel(change.id, ALICE).ok
    assert world.approvals.store.get(change.id).status is RequestStatus.CANCELLED
    assert [s[2] for s in world.steps()] == ["requested", "cancelled"]


def test_an_approval_bound_to_what_the_approver_saw(world):
    change = requested(world)
    stale = world.approve(BOB, change.id, digest="0" * 16)
    assert stale.exit_code is ExitCode.CONFLICT and world.percentage() == 25.0
    assert world.approve(BOB, change.id, digest=change.digest).ok


def test_unknown_and_malformed_request_ids(world):
    for asked in ("999999", "#abc", "١٢", "9" * 40, ""):
        decision = world.approve(BOB, asked)
        assert decision.exit_code is ExitCode.USAGE, asked
        assert "no change request" in decision.message


def test_pending_flags_names_each_flag_waiting(world):
    change = requested(world)
    assert set(world.approvals.pending_flags(PROD)) == {FLAG}
    assert world.approvals.pending_flags(STAGING) == {}
    world.approvals.cancel(change.id, ALICE)
    assert world.approvals.pending_flags(PROD) == {}


def test_the_overviews_question_reads_and_never_writes(world):
    """pending_flags runs on every overview refresh: a request past due is no longer
    shown, and is expired (with its audit record) only where requests are listed."""
    change = requested(world)
    world.clock[0] += timedelta(hours=25)
    assert world.approvals.pending_flags(PROD) == {}
    assert world.approvals.store.get(change.id).status is RequestStatus.PENDING
    assert [s[2] for s in world.steps()] == ["requested"]
    world.approvals.requests()
    assert world.approvals.store.get(change.id).status is RequestStatus.EXPIRED


def test_without_the_database_nothing_is_requested_and_rollback_still_works(tmp_path):
    w = _world(_yaml_backend(tmp_path), None, tmp_path)
    asked = w.act(ALICE)
    assert asked.exit_code is ExitCode.UNAVAILABLE
    assert "change requests need the metrics database" in (asked.error or "")
    assert w.percentage() == 25.0
    assert w.act(ALICE, Action.ROLLBACK).applied
    assert w.approve(BOB, "1").exit_code is ExitCode.UNAVAILABLE


# -- at once ---------------------------------------------------------------------


def _two_approvers_at_once(w: World, change: ChangeRequest) -> list:
    barrier = threading.Barrier(2)
    decisions: list = []

    def press(who: Identity) -> None:
        barrier.wait()
        decisions.append(w.approve(who, change.id))

    threads = [threading.Thread(target=press, args=(who,)) for who in (BOB, CAROL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return decisions


def test_two_approvers_at_once_one_applies(world):
    change = requested(world)
    decisions = _two_approvers_at_once(world, change)
    assert sorted(d.ok for d in decisions) == [False, True]
    assert world.percentage() == 50.0
    assert [s[2] for s in world.steps()].count("applied") == 1
    assert [s[2] for s in world.steps()].count("approved") == 1


@pytest.mark.postgres
def test_two_approvers_at_once_one_applies_on_postgresql(postgres_url, tmp_path):
    engine = open_database(postgres_url)
    w = _world(_yaml_backend(tmp_path), engine, tmp_path)
    for _ in range(5):
        change = requested(w)
        before = w.percentage()
        decisions = _two_approvers_at_once(w, change)
        assert sorted(d.ok for d in decisions) == [False, True]
        assert w.percentage() > before
        assert w.approvals.store.get(change.id).status is RequestStatus.APPLIED
        if w.percentage() >= 100:
            break
