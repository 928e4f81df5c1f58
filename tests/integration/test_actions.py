"""Guarded actions end to end on real parts: YAML files, SQLite / PostgreSQL audit."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from app.audit import AuditEntry, AuditLog, Outcome
from app.flags.loader import load_config
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.planning import plan_action
from app.rollout.roles import Identity, Role
from tests.support.bundled import copy_bundled_config
from tests.support.identities import OPERATOR

ADMIN = Identity("ada", Role.ADMIN, "test")
VIEWER = Identity("vic", Role.VIEWER, "test")
ENV = "production"


def passing(_snapshot, _flag):
    return [GuardResult("data_fresh", True, 1.0, 120, "fresh")]


def failing(_snapshot, _flag):
    return [
        GuardResult("data_fresh", True, 1.0, 120, "fresh"),
        GuardResult("error_rate", False, 0.07, 0.01, "7 % failed"),
    ]


def no_source(_snapshot, _flag):
    return [GuardResult("data_fresh", False, None, 120, "no data: prometheus unavailable")]


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return copy_bundled_config(tmp_path)


@pytest.fixture
def backend(flags: Path) -> YamlFlagBackend:
    return YamlFlagBackend(flags)


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(
        open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), tmp_path / "journal.jsonl"
    )


def request(action=Action.ADVANCE, flag="ab_testing", **kwargs):
    values = {"environment": ENV, "reason": "steady for an hour", "identity": OPERATOR}
    return ActionRequest(action=action, flag=flag, **(values | kwargs))


def percentage(flags: Path, flag: str) -> float:
    return load_config(flags, ENV).flags[flag].percentage


def test_advance_climbs_one_step_and_audits_pending_then_applied(flags, backend, audit):
    result = execute_action(request(), backend, audit, passing)
    assert result.exit_code is ExitCode.DONE and result.applied
    assert percentage(flags, "ab_testing") == 50.0
    (entry,) = audit.entries(flag="ab_testing")
    assert (entry.from_percentage, entry.to_percentage, entry.outcome) == (
        25.0,
        50.0,
        Outcome.APPLIED,
    )
    assert entry.actor == "olga" and entry.reason == "steady for an hour"
    assert entry.guards == [passing(None, None)[0].as_json()]
    document = result.as_json()
    assert document["from"] == {"state": "rollout", "percentage": 25.0}
    assert document["to"] == {"state": "rollout", "percentage": 50.0}
    assert document["audit_id"] == entry.id


def test_failed_guards_refuse_and_record_the_refusal(flags, backend, audit):
    before = flags.with_name("feature_flags_production.yaml").read_bytes()
    result = execute_action(request(), backend, audit, failing)
    assert result.exit_code is ExitCode.REFUSED and not result.applied
    assert "error_rate" in (result.error or "")
    assert flags.with_name("feature_flags_production.yaml").read_bytes() == before
    assert [e.outcome for e in audit.entries()] == [Outcome.REFUSED]


def test_no_source_is_exit_4(backend, audit):
    assert execute_action(request(), backend, audit, no_source).exit_code is ExitCode.UNAVAILABLE


def test_override_needs_admin_and_is_recorded_as_override(flags, backend, audit):
    refused = execute_action(request(override_guards=True), backend, audit, failing)
    assert refused.exit_code is ExitCode.REFUSED and "needs the admin role" in (refused.error or "")
    done = execute_action(request(override_guards=True, identity=ADMIN), backend, audit, failing)
    assert done.applied
    (entry,) = [e for e in audit.entries() if e.outcome is Outcome.APPLIED]
    assert entry.override is True and entry.actor == "ada"


def test_a_viewer_is_refused_even_by_a_forged_call(flags, backend, audit):
    before = flags.with_name("feature_flags_production.yaml").read_bytes()
    for action in (Action.ADVANCE, Action.ROLLBACK, Action.KILL):
        result = execute_action(request(action, identity=VIEWER), backend, audit, passing)
        assert result.exit_code is ExitCode.REFUSED and "needs the operator role" in (
            result.error or ""
        )
    emergency = ActionRequest(Action.EMERGENCY, ENV, "incident", VIEWER)
    assert execute_action(emergency, backend, audit, passing).exit_code is ExitCode.REFUSED
    assert flags.with_name("feature_flags_production.yaml").read_bytes() == before
    assert audit.entries() == []


def test_rollback_and_kill_never_look_at_metrics(flags, backend, audit):
    def exploding(_snapshot, _flag):
        raise AssertionError("a rollback must not evaluate guards")

    assert execute_action(request(Action.ROLLBACK), backend, audit, exploding).applied
    assert percentage(flags, "ab_testing") == 10.0
    assert execute_action(request(Action.KILL), backend, audit, exploding).applied
    config = load_config(flags, ENV)
    assert config.flags["ab_testing"].state is FlagState.DISABLED
    assert config.flags["ab_testing"].percentage == 0.0


def test_emergency_rollback_kills_every_rollout_flag_but_the_safety_flags(flags, backend, audit):
    before = load_config(flags, ENV)
    rolling = {k for k, f in before.flags.items() if f.state is FlagState.ROLLOUT}
    result = execute_action(
        ActionRequest(Action.EMERGENCY, ENV, "incident 42", OPERATOR), backend, audit, passing
    )
    assert result.applied
    after = load_config(flags, ENV)
    assert {k for k, f in after.flags.items() if f.state is FlagState.ROLLOUT} == set()
    for key in ("rollback_mechanism", "performance_monitoring"):
        assert after.flags[key] == before.flags[key]
    assert {e.flag for e in audit.entries()} == rolling
    assert len(result.as_json()["flags"]) == len(rolling)


def test_the_same_idempotency_key_applies_once(flags, backend, audit):
    first = execute_action(request(idempotency_key="click-1"), backend, audit, passing)
    again = execute_action(request(idempotency_key="click-1"), backend, audit, passing)
    assert first.applied and again.applied and again.replayed
    assert percentage(flags, "ab_testing") == 50.0  # not 100
    assert len(audit.entries()) == 1


def test_a_double_click_from_two_threads_applies_once(flags, backend, audit):
    results = []
    barrier = threading.Barrier(2)

    def click():
        barrier.wait()
        results.append(execute_action(request(idempotency_key="dbl"), backend, audit, passing))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert percentage(flags, "ab_testing") == 50.0
    assert len(audit.entries()) == 1
    assert sum(1 for r in results if r.applied and not r.replayed) == 1


def test_a_stale_page_is_refused_with_the_fresh_state(flags, backend, audit):
    seen = backend.load(ENV).versions
    assert execute_action(request(Action.ROLLBACK), backend, audit, passing).applied
    stale = execute_action(request(expected_versions=seen), backend, audit, passing)
    assert stale.exit_code is ExitCode.CONFLICT
    assert stale.fresh is not None and stale.fresh.flag("ab_testing").percentage == 10.0
    assert percentage(flags, "ab_testing") == 10.0
    assert audit.entries()[0].outcome is Outcome.REFUSED  # nothing went wrong


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": "   "}, "a reason is required"),
        ({"reason": "x" * 10_000_000}, "10,000,000 characters long; the limit is 2,000"),
        ({"to_percentage": -1.0}, "within 0..100"),
        ({"to_percentage": 101.0}, "within 0..100"),
        ({"to_percentage": 10.0}, "above the current"),
        ({"flag": "no_such_flag"}, "unknown flag"),
        ({"flag": '../../etc/passwd"}) or vector(1)'}, "unknown flag"),
        ({"flag": "x'; DROP TABLE audit_log; --"}, "unknown flag"),
        ({"idempotency_key": ""}, "idempotency key"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(flags, backend, audit, changes, message):
    before = {p.name: p.read_bytes() for p in flags.parent.glob("feature_flags*.yaml")}
    result = execute_action(request(**changes), backend, audit, passing)
    assert result.exit_code is ExitCode.USAGE
    assert message in (result.error or "")
    assert {p.name: p.read_bytes() for p in flags.parent.glob("feature_flags*.yaml")} == before
    assert audit.entries() == []


def test_the_top_of_the_ladder_is_bad_usage(backend, audit):
    result = execute_action(request(flag="rollback_mechanism"), backend, audit, passing)
    assert result.exit_code is ExitCode.USAGE and "top of the ladder" in (result.error or "")


def test_dry_run_shows_the_diff_and_writes_nothing(flags, backend, audit):
    result = execute_action(request(dry_run=True), backend, audit, passing)
    assert result.exit_code is ExitCode.DONE and not result.applied
    assert [t.diff for t in result.plan.transitions] == ["ab_testing: rollout 25 % → rollout 50 %"]
    assert percentage(flags, "ab_testing") == 25.0 and audit.entries() == []
    plan = plan_action(request(Action.ROLLBACK), backend, passing)
    assert plan.transitions[0].to_percentage == 10.0


def test_rollback_with_the_database_down_goes_to_the_journal_and_is_replayed(
    flags, backend, tmp_path
):
    down = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    journal = tmp_path / "journal.jsonl"
    offline = AuditLog(down, journal)
    result = execute_action(
        request(Action.KILL, idempotency_key="k-offline"), backend, offline, passing
    )
    assert result.applied and result.audit[0].id.startswith("j-")
    assert percentage(flags, "ab_testing") == 0.0
    (kept,) = offline.entries()
    assert (kept.outcome, kept.flag) == (Outcome.APPLIED, "ab_testing")
    # the same key again, still offline: found in the journal, not applied twice
    assert execute_action(
        request(Action.KILL, idempotency_key="k-offline"), backend, offline, passing
    ).replayed

    online = AuditLog(open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), journal)
    assert online.replay_journal() == 1
    assert not journal.exists()
    (stored,) = online.entries()
    assert stored.outcome is Outcome.APPLIED and not stored.id.startswith("j-")
    assert stored.idempotency_key == "k-offline" and stored.reason == "steady for an hour"
    assert online.replay_journal() == 0


def test_a_crash_between_record_and_outcome_is_reconciled(flags, backend, audit):
    now = datetime.now(UTC)
    applied = audit.record(_pending("ab_testing", 25, 50, now))
    backend.apply(ENV, [_change("ab_testing", 50)], backend.load(ENV).versions)
    lost = audit.record(_pending("canary_deployment", 5, 10, now + timedelta(seconds=1)))

    def is_applied(entry):
        flag = backend.load(entry.environment).config.flags[entry.flag]
        return flag.percentage == entry.to_percentage

    # just written: maybe another replica's action in flight, left alone
    assert audit.reconcile_pending(is_applied) == 0
    later = now + timedelta(minutes=10)
    assert audit.reconcile_pending(is_applied, now=later) == 2
    outcomes = {e.id: e.outcome for e in audit.entries()}
    assert outcomes == {applied.id: Outcome.APPLIED, lost.id: Outcome.FAILED}
    assert audit.reconcile_pending(is_applied, now=later) == 0


def _pending(flag, before, after, at):
    return AuditEntry(
        at, "olga", "advance", flag, ENV, "rollout", before, "rollout", after, "r", Outcome.PENDING
    )


def _change(flag, pct):
    from app.flags.backend import FlagChange

    return FlagChange(flag, FlagState.ROLLOUT, pct)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_actions_from_two_actors_lose_no_update(
    flags, backend, tmp_path, request, store
):
    """100 advance/rollback attempts from two actors on one flag: each is applied exactly
    once or refused, and the audit chain of applied changes is unbroken."""
    url = (
        f"sqlite:///{tmp_path / 'metrics.db'}"
        if store == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    audit = AuditLog(open_database(url), tmp_path / "journal.jsonl")
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def actor(name: str, action: Action, attempts: int) -> None:
        identity = Identity(name, Role.OPERATOR, "test")
        for i in range(attempts):
            result = execute_action(
                ActionRequest(
                    action,
                    ENV,
                    f"attempt {i}",
                    identity,
                    flag="ab_testing",
                    idempotency_key=f"{name}-{store}-{i}",
                ),
                backend,
                audit,
                passing,
            )
            with lock:
                outcomes[result.exit_code.name] += 1

    threads = [
        threading.Thread(target=actor, args=("up", Action.ADVANCE, 50)),
        threading.Thread(target=actor, args=("down", Action.ROLLBACK, 50)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(outcomes.values()) == 100
    entries = [
        e for e in audit.entries(limit=10_000) if e.idempotency_key and store in e.idempotency_key
    ]
    applied = [e for e in entries if e.outcome is Outcome.APPLIED]
    # every attempt is accounted for exactly once: applied, conflict, or bad usage (ladder end)
    assert outcomes["DONE"] == len(applied)
    assert len(entries) == outcomes["DONE"] + outcomes["CONFLICT"]
    # No lost update: each applied change moved exactly one rung, and the flag stands
    # where the applied ups and downs put it (a lost update would break the count).
    ladder = [0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0]
    moves = [ladder.index(e.to_percentage) - ladder.index(e.from_percentage) for e in applied]
    assert set(moves) <= {1, -1}
    assert percentage(flags, "ab_testing") == ladder[ladder.index(25.0) + sum(moves)]
    print(f"\n{store}: {dict(outcomes)}")


def test_the_overview_shows_the_last_applied_change_of_an_action(flags, backend, audit, tmp_path):
    """An action settles its pending record with a separate outcome row: the overview's
    "last change" must read that outcome, not the record's initial `pending`."""
    from queries.audit import last_changes

    assert execute_action(request(), backend, audit, passing).applied
    execute_action(request(Action.ROLLBACK, idempotency_key="later"), backend, audit, failing)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    changes = last_changes(engine, ENV).set_index("flag")
    assert changes.loc["ab_testing", "actor"] == "olga"
    assert changes.loc["ab_testing", "to_percentage"] == 25.0  # the rollback 50 → 25, newest
    refused = execute_action(request(idempotency_key="refused"), backend, audit, failing)
    assert refused.exit_code is ExitCode.REFUSED
    assert last_changes(engine, ENV).set_index("flag").loc["ab_testing", "to_percentage"] == 25.0


def test_an_emergency_rollback_with_the_database_down_journals_every_flag(flags, backend, tmp_path):
    down = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    journal = tmp_path / "journal.jsonl"
    offline = AuditLog(down, journal)
    request = ActionRequest(Action.EMERGENCY, ENV, "incident 43", OPERATOR, idempotency_key="e1")
    result = execute_action(request, backend, offline, passing)
    assert result.applied
    kept = offline.entries()
    assert len(kept) == len(result.plan.transitions) > 1
    assert {e.outcome for e in kept} == {Outcome.APPLIED}
    assert execute_action(request, backend, offline, passing).replayed  # key found in the journal
    online = AuditLog(open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), journal)
    assert online.replay_journal() == len(kept)
    assert {e.flag for e in online.entries()} == {t.flag for t in result.plan.transitions}


def test_audit_entries_narrow_by_environment_outcome_and_actor(flags, backend, audit):
    assert execute_action(request(), backend, audit, passing).applied
    execute_action(request(idempotency_key="no", identity=ADMIN), backend, audit, failing)
    staging = request(Action.KILL, environment="staging", idempotency_key="s")
    assert execute_action(staging, backend, audit, passing).applied
    assert [e.environment for e in audit.entries(environment="staging")] == ["staging"]
    refused = audit.entries(outcomes=(Outcome.REFUSED,))
    assert [(e.actor, e.environment) for e in refused] == [("ada", ENV)]
    assert [e.actor for e in audit.entries(actor="OLG")] == ["olga", "olga"]
    assert audit.entries(actor="%") == []  # a LIKE wildcard is matched literally


# -- what the person confirmed, and Restore ------------------------------------------

TED = Identity("ted", Role.OPERATOR, "test")


def _files(flags: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in flags.parent.glob("feature_flags*.yaml")}


def _confirmed(backend, action=Action.ROLLBACK, flag="ab_testing"):
    """What a dialog shows: the exact plan and the versions it was made on."""
    plan = plan_action(request(action, flag=flag), backend, passing)
    return {"confirmed": plan.transitions, "expected_versions": plan.snapshot.versions}


def test_the_confirmed_plan_is_applied_exactly(flags, backend, audit):
    result = execute_action(
        request(Action.ROLLBACK, **_confirmed(backend)), backend, audit, passing
    )
    assert result.applied and percentage(flags, "ab_testing") == 10.0
    (entry,) = audit.entries()
    assert (entry.from_percentage, entry.to_percentage) == (25.0, 10.0)


def test_a_confirmed_plan_on_a_moved_flag_is_a_conflict_recording_what_was_confirmed(
    flags, backend, audit
):
    seen = _confirmed(backend)  # olga's dialog: 25 → 10
    moved = execute_action(request(Action.ROLLBACK, identity=TED), backend, audit, passing)
    assert moved.applied  # ted got there first: 25 → 10
    before = _files(flags)
    result = execute_action(request(Action.ROLLBACK, **seen), backend, audit, passing)
    assert result.exit_code is ExitCode.CONFLICT and not result.applied
    assert _files(flags) == before  # nothing written, not 10 → 5
    assert "ab_testing is now rollout 10 %" in (result.error or "")
    assert "ted" in (result.error or "") and "rollout 25 % → rollout 10 %" in (result.error or "")
    assert result.fresh is not None and result.fresh.flag("ab_testing").percentage == 10.0
    refused = audit.entries()[0]
    assert (refused.actor, refused.from_percentage, refused.to_percentage) == ("olga", 25.0, 10.0)
    assert refused.outcome is Outcome.REFUSED
    assert "ted" in refused.detail and "now rollout 10 %" in refused.detail


def test_a_version_conflict_names_who_changed_the_flag(flags, backend, audit):
    seen = backend.load(ENV).versions  # a page that passes versions only
    execute_action(request(Action.ROLLBACK, identity=TED), backend, audit, passing)
    result = execute_action(
        request(Action.ROLLBACK, expected_versions=seen), backend, audit, passing
    )
    assert result.exit_code is ExitCode.CONFLICT
    assert "changed concurrently: ab_testing" in (result.error or "")
    assert audit.entries()[0].outcome is Outcome.REFUSED
    assert "ted" in audit.entries()[0].detail


def test_an_emergency_rollback_confirmed_before_a_new_rollout_flag_is_a_conflict(
    flags, backend, audit
):
    plan = plan_action(ActionRequest(Action.EMERGENCY, ENV, "incident", OPERATOR), backend, passing)
    execute_action(request(Action.KILL, identity=TED), backend, audit, passing)
    before = _files(flags)
    stale = ActionRequest(Action.EMERGENCY, ENV, "incident", OPERATOR, confirmed=plan.transitions)
    result = execute_action(stale, backend, audit, passing)
    assert result.exit_code is ExitCode.CONFLICT and _files(flags) == before
    assert "ab_testing is now disabled 0 %" in (result.error or "")
    assert len([e for e in audit.entries() if e.actor == "olga"]) == len(plan.transitions)


def _restore(audit_id: str, **kwargs) -> ActionRequest:
    values = {"reason": "the incident was elsewhere", "identity": OPERATOR} | kwargs
    return ActionRequest(Action.RESTORE, ENV, restore_of=audit_id, **values)


def test_restore_of_a_kill_puts_the_flag_back_and_is_recorded_as_restore_of(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    assert percentage(flags, "ab_testing") == 0.0
    kill_id = killed.audit[0].id
    result = execute_action(_restore(kill_id), backend, audit, passing)
    assert result.applied, result.error
    flag = load_config(flags, ENV).flags["ab_testing"]
    assert (flag.state, flag.percentage) == (FlagState.ROLLOUT, 25.0)
    entry = audit.entries()[0]
    assert (
        entry.action == "restore"
        and entry.reason == f"restore of #{kill_id}: the incident was elsewhere"
    )
    assert (entry.from_state, entry.to_state, entry.to_percentage) == ("disabled", "rollout", 25.0)
    assert [g["name"] for g in entry.guards] == ["data_fresh"]  # a restore that goes up is guarded


class CountingBackend(YamlFlagBackend):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    def apply(self, environment, changes, expected_versions):
        self.writes.append(len(changes))
        return super().apply(environment, changes, expected_versions)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_restore_of_an_emergency_rollback_restores_every_flag_in_one_write(
    flags, tmp_path, request, store
):
    url = (
        f"sqlite:///{tmp_path / 'metrics.db'}"
        if store == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    audit = AuditLog(open_database(url), tmp_path / "journal.jsonl")
    backend = CountingBackend(flags)
    before = load_config(flags, ENV).flags
    emergency = execute_action(
        ActionRequest(Action.EMERGENCY, ENV, "incident 7", OPERATOR), backend, audit, passing
    )
    assert emergency.applied and len(emergency.audit) > 2
    assert backend.writes == [len(emergency.audit)]
    # restoring any one record of the action restores the whole action
    result = execute_action(_restore(emergency.audit[-1].id), backend, audit, passing)
    assert result.applied, result.error
    assert backend.writes == [len(emergency.audit), len(emergency.audit)]  # one atomic write
    after = load_config(flags, ENV).flags
    for entry in emergency.audit:
        assert (after[entry.flag].state, after[entry.flag].percentage) == (
            before[entry.flag].state,
            before[entry.flag].percentage,
        )
    restored = [e for e in audit.entries() if e.action == "restore"]
    assert {e.flag for e in restored} == {e.flag for e in emergency.audit}
    assert {e.outcome for e in restored} == {Outcome.APPLIED}
    first = emergency.audit[0].id
    assert {e.reason for e in restored} == {
        f"restore of #{emergency.audit[-1].id}: the incident was elsewhere"
    }
    assert first != emergency.audit[-1].id
    # each flag's guards are shown under its name
    assert {g["name"].split(": ")[0] for g in restored[0].guards} == {
        e.flag for e in emergency.audit
    }


def test_restore_is_refused_after_a_later_change_and_names_it(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    execute_action(
        request(Action.ADVANCE, identity=TED, to_percentage=1.0, idempotency_key="up"),
        backend,
        audit,
        passing,
    )
    before = _files(flags)
    result = execute_action(_restore(killed.audit[0].id), backend, audit, passing)
    assert result.exit_code is ExitCode.CONFLICT
    assert f"cannot restore #{killed.audit[0].id}" in (result.error or "")
    assert "ab_testing is now rollout 1 %" in (result.error or "") and "ted" in (result.error or "")
    assert _files(flags) == before
    assert [e.action for e in audit.entries()] == ["advance", "kill"]


def test_restore_of_a_record_that_was_not_applied_is_refused(flags, backend, audit):
    refused = execute_action(request(), backend, audit, failing)
    before = _files(flags)
    result = execute_action(_restore(refused.audit[0].id), backend, audit, passing)
    assert result.exit_code is ExitCode.REFUSED
    assert "was not applied (refused)" in (result.error or "")
    assert _files(flags) == before
    missing = execute_action(_restore("999999"), backend, audit, passing)
    assert missing.exit_code is ExitCode.USAGE and "no audit record #999999" in (
        missing.error or ""
    )
    forged = execute_action(_restore("1 OR 1=1"), backend, audit, passing)
    assert forged.exit_code is ExitCode.USAGE


def test_restore_guards_refuse_an_operator_and_an_admin_may_override(flags, backend, audit):
    # a day and an hour ago: past the undo window, the guards of now decide
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    killed = execute_action(request(Action.KILL), backend, audit, passing, now=lambda: long_ago)
    before = _files(flags)
    refused = execute_action(_restore(killed.audit[0].id), backend, audit, failing)
    assert refused.exit_code is ExitCode.REFUSED and "error_rate" in (refused.error or "")
    assert f"#{killed.audit[0].id} was applied 25 h ago" in (refused.error or "")
    assert _files(flags) == before
    no_data = execute_action(
        _restore(killed.audit[0].id, idempotency_key="n"), backend, audit, no_source
    )
    assert no_data.exit_code is ExitCode.UNAVAILABLE
    not_admin = execute_action(
        _restore(killed.audit[0].id, override_guards=True, idempotency_key="o1"),
        backend,
        audit,
        failing,
    )
    assert not_admin.exit_code is ExitCode.REFUSED and "admin" in (not_admin.error or "")
    done = execute_action(
        _restore(killed.audit[0].id, identity=ADMIN, override_guards=True, idempotency_key="o2"),
        backend,
        audit,
        failing,
    )
    assert done.applied and percentage(flags, "ab_testing") == 25.0
    assert audit.entries()[0].override is True and audit.entries()[0].actor == "ada"


def test_a_restore_that_goes_down_needs_no_guards(flags, backend, audit):
    advanced = execute_action(request(), backend, audit, passing)

    def exploding(_snapshot, _flag):
        raise AssertionError("going down must not evaluate guards")

    assert execute_action(_restore(advanced.audit[0].id), backend, audit, exploding).applied
    assert percentage(flags, "ab_testing") == 25.0


def test_a_viewer_cannot_restore(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    before = _files(flags)
    result = execute_action(_restore(killed.audit[0].id, identity=VIEWER), backend, audit, passing)
    assert result.exit_code is ExitCode.REFUSED and "needs the operator role" in (
        result.error or ""
    )
    assert _files(flags) == before and len(audit.entries()) == 1


def test_a_restore_key_applies_once(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    first = execute_action(
        _restore(killed.audit[0].id, idempotency_key="r1"), backend, audit, passing
    )
    again = execute_action(
        _restore(killed.audit[0].id, idempotency_key="r1"), backend, audit, passing
    )
    assert first.applied and again.applied and again.replayed
    assert [e.action for e in audit.entries()] == ["restore", "kill"]


def test_an_operator_undoes_a_fresh_kill_whose_guards_fail_by_construction(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    judged: list[tuple[str, float, str]] = []

    def before_the_kill(snapshot, entry):
        judged.append((entry.id, snapshot.flag(entry.flag).percentage, entry.flag))
        return [GuardResult("soak_time", False, 20.0, 900.0, "at 25 % for 0.3 min")]

    result = execute_action(
        _restore(killed.audit[0].id), backend, audit, failing, evidence_before=before_the_kill
    )
    assert result.applied, result.error
    assert percentage(flags, "ab_testing") == 25.0
    assert judged == [(killed.audit[0].id, 0.0, "ab_testing")]  # the record, the flags now
    assert result.plan is not None and result.plan.undo is not None
    assert result.plan.undo.allowed and "ab_testing has not moved since" in result.plan.undo.reason
    restored = audit.entries()[0]
    assert restored.override is False  # within reason: no override to record
    assert [(g["name"], g["passed"]) for g in restored.guards] == [("soak_time", False)]


def test_an_undo_after_the_window_or_a_move_needs_an_override(flags, backend, audit):
    killed = execute_action(request(Action.KILL), backend, audit, passing)
    later = datetime.now(UTC) + timedelta(hours=2)
    late = execute_action(
        _restore(killed.audit[0].id, idempotency_key="late"),
        backend,
        audit,
        failing,
        now=lambda: later,
        undo_window=timedelta(hours=1),
    )
    assert late.exit_code is ExitCode.REFUSED
    assert "was applied 2 h ago: an undo without override is allowed within 1 h" in (
        late.error or ""
    )
    # moved and back: 0 → 1 % by ted, then killed again; the first kill is at 0 % again
    execute_action(
        request(Action.ADVANCE, identity=TED, to_percentage=1.0, idempotency_key="up"),
        backend,
        audit,
        passing,
    )
    execute_action(request(Action.KILL, idempotency_key="k2"), backend, audit, passing)
    before = _files(flags)
    moved = execute_action(
        _restore(killed.audit[0].id, idempotency_key="moved"), backend, audit, failing
    )
    assert moved.exit_code is ExitCode.REFUSED
    assert f"ab_testing moved since #{killed.audit[0].id}" in (moved.error or "")
    assert "by ted" in (moved.error or "") and _files(flags) == before
