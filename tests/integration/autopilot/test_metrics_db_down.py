"""The metrics database (plans, lease, audit log) stops under a running autopilot: an
action already under way is journalled as a manual one would be, never applied without
a record; no tick acts while it is down, the loop keeps running, and once it is back the
journalled step is the autopilot's own (followed, not taken for a person's change).

A dedicated PostgreSQL database of this test is stopped by refusing and ending its
connections; the evidence lives in a SQLite file of its own, so it stays readable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.audit import AuditLog, Outcome
from app.autopilot.controller import Controller, ControllerConfig
from app.autopilot.decide import Move
from app.autopilot.model import PlanOptions, PlanStatus
from app.autopilot.service import set_plan
from app.autopilot.store import PlanStore
from app.evidence.windows import WindowPlan
from app.flags.backend import FlagBackend, FlagSnapshot
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.guards import GuardPolicy
from queries.sql import SqlMetrics
from tests.conftest import POSTGRES_ADMIN, fresh_postgres_database
from tests.support.bundled import copy_bundled_config
from tests.support.identities import OPERATOR
from tests.support.rollup_feeder import RollupFeeder

pytestmark = pytest.mark.postgres

ENV = "production"
FLAG = "phase1_config_externalization"  # rollout 10 %, no dependencies
GATES = frozenset({"data_fresh", "error_rate", "soak_time", "dependencies", "exposure"})


def accepting(database: str, accept: bool) -> None:
    """Let `database` take connections again, or refuse new ones and end the open ones."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as admin:
        flag = "true" if accept else "false"
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {flag}')
        if not accept:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )


class StopsDatabaseOnLoad:
    """The real flag backend; the first `load` after `arm()` stops the database, as if
    it went down right after the tick read its plans."""

    def __init__(self, backend: FlagBackend, database: str) -> None:
        self._backend = backend
        self._database = database
        self._armed = False

    def arm(self) -> None:
        self._armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def load(self, environment: str) -> FlagSnapshot:
        snapshot = self._backend.load(environment)
        if self._armed:
            self._armed = False
            accepting(self._database, False)
        return snapshot


@dataclass
class Stack:
    engine: Engine
    database: str
    backend: YamlFlagBackend
    stopping: StopsDatabaseOnLoad
    audit: AuditLog
    controller: Controller
    evidence: Engine


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    copy_bundled_config(tmp_path)
    with fresh_postgres_database("rollout_db_down") as url:
        database = str(make_url(url).database)
        engine = open_database(url)
        evidence = open_database(f"sqlite:///{tmp_path / 'evidence.db'}")
        backend = YamlFlagBackend(tmp_path / "feature_flags.yaml")
        stopping = StopsDatabaseOnLoad(backend, database)
        audit = AuditLog(engine, tmp_path / "audit-journal.jsonl")
        controller = Controller(
            engine=engine,
            backend=stopping,  # type: ignore[arg-type]
            audit=audit,
            metrics=lambda: [SqlMetrics(evidence)],
            config=ControllerConfig(
                interval=timedelta(seconds=0.5),
                lease_period=timedelta(seconds=3),
                window=timedelta(seconds=5),
                pause_after_ticks=20,
                policy=GuardPolicy(slots=WindowPlan(slot=1.0)),
            ),
            holder="only",
        )
        try:
            yield Stack(engine, database, backend, stopping, audit, controller, evidence)
        finally:
            accepting(database, True)
            engine.dispose()


def test_the_database_stopping_mid_tick_journals_the_action_and_the_plan_goes_on_once_back(
    stack: Stack,
) -> None:
    set_plan(
        PlanStore(stack.engine),
        stack.audit,
        OPERATOR,
        stack.backend.load(ENV),
        FLAG,
        PlanOptions(steps=(10.0, 25.0, 50.0), soak=timedelta(0), gates=GATES, stop_at=50),
        now=datetime.now(UTC),
    )
    with RollupFeeder(stack.evidence, stack.backend, ENV, [FLAG]):
        time.sleep(2.0)  # two whole 1 s slots of evaluations
        stack.stopping.arm()
        outcome = stack.controller.tick().outcome(FLAG)
        # applied, and recorded: in the journal, as a manual action would be
        assert outcome is not None and outcome.decision.move is Move.ADVANCE
        assert outcome.applied is not None and outcome.applied.applied
        assert "not recorded in the plan" in outcome.said
        assert stack.backend.load(ENV).flag(FLAG).percentage == 25.0
        [journalled] = AuditLog(None, stack.audit._journal).entries(FLAG)
        assert journalled.id.startswith("j-")
        assert (journalled.actor, journalled.action, journalled.outcome) == (
            "autopilot",
            "advance",
            Outcome.APPLIED,
        )
        assert (journalled.from_percentage, journalled.to_percentage) == (10.0, 25.0)
        assert not stack.audit.database_ok()

        # down: no tick acts, none crashes the loop
        report = stack.controller.tick()
        assert (report.leader, report.outcomes) == (False, ())
        assert "no plan acted on" in report.notices[0]
        stop = threading.Event()
        loop = threading.Thread(target=stack.controller.run, args=(stop,), daemon=True)
        loop.start()
        try:
            time.sleep(2)
            assert loop.is_alive()
            assert stack.backend.load(ENV).flag(FLAG).percentage == 25.0

            accepting(stack.database, True)
            deadline = time.monotonic() + 45
            plans = PlanStore(stack.engine)
            while time.monotonic() < deadline:
                plan = plans.get(ENV, FLAG)
                if plan is not None and (
                    plan.expected_percentage == 50.0 or plan.status is not PlanStatus.ACTIVE
                ):
                    break
                time.sleep(0.3)
        finally:
            stop.set()
            loop.join(timeout=30)
    assert not loop.is_alive()
    plan = PlanStore(stack.engine).get(ENV, FLAG)
    assert plan is not None
    assert plan.status is PlanStatus.ACTIVE, plan.status_reason
    assert plan.expected_percentage == 50.0
    applied = stack.audit.entries(FLAG, environment=ENV, outcomes=(Outcome.APPLIED,))
    steps = [(e.actor, e.from_percentage, e.to_percentage) for e in reversed(applied)]
    assert steps == [("autopilot", 10.0, 25.0), ("autopilot", 25.0, 50.0)]
    assert all(not e.id.startswith("j-") for e in applied)  # the journal moved in
    assert stack.audit.pending_in_journal() == 0
    assert stack.backend.load(ENV).flag(FLAG).percentage == 50.0
