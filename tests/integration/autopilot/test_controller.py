"""The controller's ticks on real parts: YAML flag files, SQLite roll-ups as the metrics
source, the audit log and the plans in the same database."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.audit import AuditEntry, AuditLog, Outcome
from app.autopilot.controller import Controller, ControllerConfig
from app.autopilot.decide import Move
from app.autopilot.model import PlanInvalid, PlanOptions, PlanStatus, RolloutPlan
from app.autopilot.service import SECOND_PERSON, pause_plan, resume_plan, set_plan
from app.autopilot.store import PlanStore
from app.flags.backend import FlagChange
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.roles import Identity, NotAuthorized, Role
from queries.sql import SqlMetrics
from tests.support.bundled import copy_bundled_config
from tests.support.gates import last_whole_slot
from tests.support.identities import OPERATOR

VIC = Identity("vic", Role.VIEWER, "test")
ENV = "production"
FLAG = "phase1_config_externalization"  # rollout 10 %, no dependencies
GATES = frozenset({"data_fresh", "error_rate", "soak_time", "dependencies", "exposure"})


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_database(f"sqlite:///{tmp_path / 'metrics.db'}")


@pytest.fixture
def backend(tmp_path: Path) -> YamlFlagBackend:
    return YamlFlagBackend(copy_bundled_config(tmp_path))


@pytest.fixture
def audit(engine: Engine, tmp_path: Path) -> AuditLog:
    return AuditLog(engine, tmp_path / "journal.jsonl")


@pytest.fixture
def controller(engine: Engine, backend: YamlFlagBackend, audit: AuditLog) -> Iterator[Controller]:
    yield make_controller(engine, backend, audit, "one")


def make_controller(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, holder: str
) -> Controller:
    return Controller(
        engine=engine,
        backend=backend,
        audit=audit,
        metrics=lambda: [SqlMetrics(engine)],
        config=ControllerConfig(pause_after_ticks=3),
        holder=holder,
    )


def evaluations(
    engine: Engine, share: float, *, errors_on: int = 0, total: int = 20_000, flag: str = FLAG
) -> None:
    """A minute of evaluations ending at the last whole slot (the newest a tick judges):
    `share` of them on the treatment, `errors_on` of those failed."""
    start = last_whole_slot() - timedelta(seconds=60)
    on = round(total * share)
    rows = [
        EvaluationRollup(start, 60, ENV, flag, "on", "split", on - errors_on),
        EvaluationRollup(start, 60, ENV, flag, "off", "split", total - on),
    ]
    if errors_on:
        rows.append(EvaluationRollup(start, 60, ENV, flag, "on", "error", errors_on, errors_on))
    insert_rollups(engine, rows)


def a_plan(store_engine: Engine, backend: YamlFlagBackend, audit: AuditLog, **changes: object):
    options: dict[str, object] = {
        "steps": (10.0, 25.0, 50.0, 100.0),
        "soak": timedelta(0),
        "gates": GATES,
    }
    options |= changes
    return set_plan(
        PlanStore(store_engine),
        audit,
        OPERATOR,
        backend.load(ENV),
        FLAG,
        PlanOptions(**options),  # type: ignore[arg-type]
        now=datetime.now(UTC),
    )


def test_a_healthy_flag_advances_once_and_the_audit_says_so(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    plan = a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    report = controller.tick()
    assert report.leader
    outcome = report.outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ADVANCE
    assert backend.load(ENV).flag(FLAG).percentage == 25.0
    record = audit.latest_applied(ENV, FLAG)
    assert record is not None
    assert (record.actor, record.action, record.to_percentage) == ("autopilot", "advance", 25.0)
    assert record.idempotency_key == f"autopilot-{plan.id}-1-advance-25"
    assert {g["name"] for g in record.guards} == GATES
    assert all(g["passed"] for g in record.guards)
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None
    assert (stored.expected_percentage, stored.actions_taken) == (25.0, 1)
    [event] = PlanStore(engine).events(plan.id)
    assert (event.kind, event.from_percentage, event.to_percentage) == ("advance", 10.0, 25.0)
    assert event.audit_id == record.id

    again = controller.tick().outcome(FLAG)  # the 10 % minute is before the new step
    assert again is not None and again.decision.move is Move.WAIT
    assert not again.decision.no_data  # a step younger than one slot is no missing data
    assert "and its first whole 30 s slot has not ended" in again.said
    assert backend.load(ENV).flag(FLAG).percentage == 25.0
    applied = audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,))
    assert len(applied) == 1


def test_a_failing_treatment_is_rolled_back_and_the_plan_paused(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    plan = a_plan(engine, backend, audit, steps=(5.0, 10.0, 25.0))
    evaluations(engine, 0.10, errors_on=600)  # 3 % of all evaluations fail, all treatment
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ROLLBACK
    assert backend.load(ENV).flag(FLAG).percentage == 5.0
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.PAUSED
    assert "rollback 10 % → 5 %: error_rate failed" in stored.status_reason
    [event] = PlanStore(engine).events(plan.id)
    assert event.kind == "rollback"
    assert event.gate is not None and event.gate["name"] == "error_rate"
    assert event.gate["value"] == pytest.approx(0.03)
    assert event.seconds_to_mitigate is not None and event.seconds_to_mitigate >= 0
    record = audit.get(event.audit_id)
    assert record is not None and record.actor == "autopilot" and record.action == "rollback"
    # the gates judged, the failed one with its value, in the rollback's own record
    assert {g["name"] for g in record.guards} == GATES
    failed = {g["name"]: g for g in record.guards if not g["passed"]}
    assert failed["error_rate"]["value"] == pytest.approx(0.03)

    later = controller.tick().outcome(FLAG)  # paused: nothing more
    assert later is None
    assert backend.load(ENV).flag(FLAG).percentage == 5.0


def test_a_person_changing_the_flag_pauses_the_plan_and_is_named(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    by_hand = execute_action(
        ActionRequest(Action.ROLLBACK, ENV, "not today", OPERATOR, flag=FLAG, to_percentage=5),
        backend,
        audit,
        lambda _s, _f: [],
    )
    assert by_hand.applied
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.PAUSE
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.PAUSED
    assert "changed by olga at" in stored.status_reason
    assert backend.load(ENV).flag(FLAG).percentage == 5.0  # not fought

    resumed = resume_plan(
        PlanStore(engine),
        audit,
        OPERATOR,
        stored,
        backend.load(ENV),
        "go on from 5",
        datetime.now(UTC),
    )
    assert resumed.status is PlanStatus.ACTIVE
    assert (resumed.expected_state, resumed.expected_percentage) == (FlagState.ROLLOUT, 5.0)


def test_a_second_controller_does_nothing_while_the_first_leads(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    assert controller.tick().leader
    standby = make_controller(engine, backend, audit, "two")
    report = standby.tick()
    assert (report.leader, report.holder, report.outcomes) == (False, "one", ())
    heartbeat = PlanStore(engine).heartbeat("autopilot")
    assert heartbeat is not None and heartbeat.holder == "one" and heartbeat.ticks == 1


def test_an_applied_step_whose_plan_was_not_updated_is_adopted_not_repeated(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    plan = a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    # a tick cut off after applying its advance, before writing the plan
    cut_off = execute_action(
        ActionRequest(
            Action.ADVANCE,
            ENV,
            "autopilot: advance 10 % → 25 %",
            controller.identity,
            flag=FLAG,
            to_percentage=25,
            idempotency_key=plan.action_key("advance", 25),
        ),
        backend,
        audit,
        lambda _s, _f: [],
    )
    assert cut_off.applied
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.RESYNC
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.ACTIVE
    assert (stored.expected_percentage, stored.actions_taken) == (25.0, 1)
    assert len(audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,))) == 1


def cut_off_advance(
    plan: RolloutPlan, backend: YamlFlagBackend, audit: AuditLog, *, written: bool
) -> AuditEntry:
    """What a leader killed mid-tick leaves: the pending record of the plan's advance
    10 % → 25 %, and the flag written (`written`) or not yet."""
    pending = audit.record(
        AuditEntry(
            at=datetime.now(UTC),
            actor="autopilot",
            action="advance",
            flag=FLAG,
            environment=ENV,
            from_state="rollout",
            from_percentage=10.0,
            to_state="rollout",
            to_percentage=25.0,
            reason="autopilot: advance 10 % → 25 %",
            outcome=Outcome.PENDING,
            idempotency_key=plan.action_key("advance", 25),
        )
    )
    if written:
        snapshot = backend.load(ENV)
        backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 25.0)], snapshot.versions)
    return pending


def test_a_step_written_by_a_tick_cut_off_before_its_outcome_is_adopted_not_taken_for_a_person(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    plan = a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    pending = cut_off_advance(plan, backend, audit, written=True)
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.RESYNC
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.ACTIVE
    assert (stored.expected_percentage, stored.actions_taken) == (25.0, 1)
    settled = audit.get(pending.id)
    assert settled is not None and settled.outcome is Outcome.APPLIED
    assert "cut off" in settled.detail
    applied = audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,))
    assert [(e.from_percentage, e.to_percentage) for e in applied] == [(10.0, 25.0)]
    assert backend.load(ENV).flag(FLAG).percentage == 25.0


@pytest.mark.parametrize("left", [Outcome.PENDING, Outcome.FAILED])
def test_a_step_whose_key_an_unapplied_attempt_spent_is_taken_under_the_next_key(
    engine: Engine,
    backend: YamlFlagBackend,
    audit: AuditLog,
    controller: Controller,
    left: Outcome,
) -> None:
    """PENDING: a tick cut off before it wrote the flag; FAILED: a write that failed.
    Either way the flag is still at 10 %: the step must not wait for ever on its key."""
    plan = a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    spent = cut_off_advance(plan, backend, audit, written=False)
    if left is Outcome.FAILED:
        audit.settle(spent, Outcome.FAILED, "flags unreadable: disk full")
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ADVANCE
    assert outcome.applied is not None and outcome.applied.applied
    assert backend.load(ENV).flag(FLAG).percentage == 25.0
    applied = audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,))
    assert [(e.from_percentage, e.to_percentage) for e in applied] == [(10.0, 25.0)]
    assert applied[0].idempotency_key == f"autopilot-{plan.id}-2-advance-25"
    first = audit.get(spent.id)
    assert first is not None and first.outcome is Outcome.FAILED
    if left is Outcome.PENDING:
        assert "cut off before changing the flag" in first.detail
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.ACTIVE
    assert (stored.expected_percentage, stored.actions_taken) == (25.0, 2)


def test_no_data_never_advances_and_pauses_after_n_ticks(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    a_plan(engine, backend, audit)
    said = [controller.tick().outcome(FLAG) for _ in range(3)]
    assert [o.decision.move for o in said if o] == [Move.WAIT, Move.WAIT, Move.PAUSE]
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.PAUSED
    assert "no data for 3 ticks" in stored.status_reason
    assert backend.load(ENV).flag(FLAG).percentage == 10.0
    assert audit.latest_applied(ENV, FLAG) is None


def test_a_viewer_cannot_set_or_pause_a_plan(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog
) -> None:
    with pytest.raises(NotAuthorized):
        set_plan(
            PlanStore(engine),
            audit,
            VIC,
            backend.load(ENV),
            FLAG,
            PlanOptions(steps=(25.0,), soak=timedelta(0)),
            now=datetime.now(UTC),
        )
    plan = a_plan(engine, backend, audit)
    with pytest.raises(NotAuthorized):
        pause_plan(PlanStore(engine), audit, VIC, plan, "", datetime.now(UTC))
    assert PlanStore(engine).get(ENV, FLAG) == plan


def test_plan_changes_are_audited_and_bad_plans_named(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog
) -> None:
    plan = a_plan(engine, backend, audit)
    pause_plan(PlanStore(engine), audit, OPERATOR, plan, "lunch", datetime.now(UTC))
    actions = [e.action for e in audit.entries(FLAG, environment=ENV)]
    assert actions == ["plan_pause", "plan_set"]
    assert all(e.outcome is Outcome.RECORDED for e in audit.entries(FLAG, environment=ENV))
    with pytest.raises(PlanInvalid) as invalid:
        set_plan(
            PlanStore(engine),
            audit,
            OPERATOR,
            backend.load(ENV),
            "no_such_flag",
            PlanOptions(steps=(50.0, 25.0), soak=timedelta(0)),
            now=datetime.now(UTC),
        )
    assert "steps must rise, each once (1,5,25,50)" in invalid.value.problems
    assert "unknown flag 'no_such_flag' in production" in invalid.value.problems


def test_where_changes_need_a_second_person_another_operator_starts_the_plan(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    evaluations(engine, 0.10)
    plan = set_plan(
        PlanStore(engine),
        audit,
        OPERATOR,
        backend.load(ENV),
        FLAG,
        PlanOptions(steps=(10.0, 25.0), soak=timedelta(0), gates=GATES),
        now=datetime.now(UTC),
        approval_required=True,
    )
    assert plan.status is PlanStatus.PAUSED
    assert plan.status_reason == f"{SECOND_PERSON} (set by olga)"
    assert controller.tick().outcome(FLAG) is None  # a paused plan is not acted on
    assert backend.load(ENV).flag(FLAG).percentage == 10.0
    with pytest.raises(NotAuthorized, match="olga set this plan: in production another"):
        resume_plan(
            PlanStore(engine),
            audit,
            OPERATOR,
            plan,
            backend.load(ENV),
            "",
            datetime.now(UTC),
            approval_required=True,
        )
    ivan = Identity("ivan", Role.OPERATOR, "test")
    started = resume_plan(
        PlanStore(engine),
        audit,
        ivan,
        plan,
        backend.load(ENV),
        "looked at it",
        datetime.now(UTC),
        approval_required=True,
    )
    assert started.status is PlanStatus.ACTIVE
    assert started.status_reason == "resumed by ivan: looked at it"
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ADVANCE


def test_a_step_journaled_while_the_database_was_down_is_adopted_not_paused(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller, tmp_path
) -> None:
    """A tick cut off from the database mid-action: its audit record went to the local
    journal and the flag moved, the plan was not updated. With the database back, the
    next tick moves the journal into it and adopts its own step, naming nobody else."""
    plan = a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    cut_off = AuditLog(None, tmp_path / "journal.jsonl")  # the same journal, no database
    journaled = execute_action(
        ActionRequest(
            Action.ADVANCE,
            ENV,
            "autopilot: advance 10 % → 25 %",
            controller.identity,
            flag=FLAG,
            to_percentage=25,
            idempotency_key=plan.action_key("advance", 25),
        ),
        backend,
        cut_off,
        lambda _s, _f: [],
    )
    assert journaled.applied and journaled.audit[0].id.startswith("j-")
    assert audit.pending_in_journal() > 0

    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.RESYNC, outcome
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.ACTIVE
    assert (stored.expected_percentage, stored.actions_taken) == (25.0, 1)
    assert audit.pending_in_journal() == 0
    record = audit.latest_applied(ENV, FLAG)
    assert record is not None and record.actor == "autopilot" and not record.id.startswith("j-")


def test_a_tick_past_half_its_lease_acts_no_more(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog
) -> None:
    """A standby may lead once the lease has passed: a tick that ran long stops acting
    at half of it, so two leaders never act at once."""
    a_plan(engine, backend, audit)
    evaluations(engine, 0.10)
    slow = Controller(
        engine=engine,
        backend=backend,
        audit=audit,
        metrics=lambda: [SqlMetrics(engine)],
        config=ControllerConfig(lease_period=timedelta(microseconds=2)),
        holder="slow",
    )
    report = slow.tick()
    outcome = report.outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.WAIT
    assert outcome.said == "waited: this tick ran past half its lease; the next one goes on"
    assert "the tick ran past half its lease: some plans wait for the next" in report.notices
    assert backend.load(ENV).flag(FLAG).percentage == 10.0


def test_a_dry_run_plan_records_what_it_would_have_done_once_and_never_acts(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    plan = a_plan(engine, backend, audit, steps=(5.0, 10.0, 25.0), dry_run=True)
    evaluations(engine, 0.10, errors_on=600)  # 3 % of all evaluations fail, all treatment
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.DRY_RUN
    said = outcome.said
    assert said.startswith("dry run: would have rolled back 10 % → 5 % at ")
    assert "UTC: rollback 10 % → 5 %: error_rate failed" in said
    assert backend.load(ENV).flag(FLAG).percentage == 10.0  # nothing moved
    assert audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,)) == []
    stored = PlanStore(engine).get(ENV, FLAG)
    assert stored is not None and stored.status is PlanStatus.ACTIVE and stored.dry_run
    assert stored.last_decision == said and stored.expected_percentage == 10.0
    [event] = PlanStore(engine).events(plan.id)
    assert (event.kind, event.text) == ("dry_run", said) and not event.audit_id
    assert event.gate is not None and event.gate["name"] == "error_rate"
    # the same evidence next tick: said once, not again
    controller.tick()
    assert len(PlanStore(engine).events(plan.id)) == 1
    assert PlanStore(engine).get(ENV, FLAG).last_decision == said  # type: ignore[union-attr]


def test_a_plans_own_budget_sets_its_gates_thresholds(
    engine: Engine, backend: YamlFlagBackend, audit: AuditLog, controller: Controller
) -> None:
    """The plan's budget, not the setting's, sets the thresholds its gates act at: the
    e-value threshold in the failed gate's words is one of the plan budget's."""
    plan = a_plan(engine, backend, audit, steps=(5.0, 10.0, 25.0), budget=0.001)
    assert plan.budget == 0.001 and "budget 0.001 false actions per plan-day" in plan.text
    evaluations(engine, 0.10, errors_on=600)
    outcome = controller.tick().outcome(FLAG)
    assert outcome is not None and outcome.decision.move is Move.ROLLBACK
    assert outcome.decision.gate is not None
    detail = outcome.decision.gate.detail
    shown = float(detail.split(" ≥ ")[1].split(")")[0])

    def thresholds(budget: float) -> list[float]:
        policy = replace(controller.config.policy, false_action_budget=budget)
        limits = policy.gate_settings(FLAG).thresholds()
        return [
            math.exp(limit + shared)
            for limit in (limits.step, limits.recent)
            for shared in (0.0, math.log(2))
        ]

    assert any(shown == pytest.approx(t, rel=0.01) for t in thresholds(0.001)), detail
    assert not any(shown == pytest.approx(t, rel=0.01) for t in thresholds(0.01)), detail
