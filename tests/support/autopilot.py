"""The autopilot's real parts as tests drive them: a state directory's flags, audit log
and plans, minutes of evaluations written as roll-ups, and a controller ticking on them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.audit import AuditLog
from app.autopilot.controller import Controller, ControllerConfig
from app.autopilot.model import PlanOptions, RolloutPlan
from app.autopilot.service import set_plan
from app.autopilot.store import PlanStore
from app.evidence.windows import WindowPlan
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from app.rollout.guards import GuardPolicy
from app.rollout.roles import Identity
from queries.sql import SqlMetrics
from tests.support.gates import last_whole_slot
from tests.support.identities import OPERATOR

#: every guard but propagation: no instance reports a config version in these tests
#: the slots the test controller judges: a step is judged a second after it began
SLOTS = WindowPlan(slot=1.0)
GATES = ("data_fresh", "error_rate", "soak_time", "dependencies", "exposure")


class AutopilotParts:
    """The database, flags, audit log and plans of a state directory (as the dashboard
    serving it opens them), for one flag in one environment."""

    def __init__(self, state: Path, flag: str, environment: str = "production") -> None:
        self.flag = flag
        self.environment = environment
        self.engine = open_database(f"sqlite:///{state / 'metrics.db'}")
        self.backend = YamlFlagBackend(state / "feature_flags.yaml")
        self.audit = AuditLog(self.engine, state / "audit-journal.jsonl")
        self.plans = PlanStore(self.engine)

    def controller(self, holder: str = "ticker:1") -> Controller:
        """The real controller on the roll-ups (no Prometheus), pausing after 3 ticks
        without data, judging 1 s slots (a step is judged a second or two after it
        began: `after_the_step` waits for that)."""
        return Controller(
            engine=self.engine,
            backend=self.backend,
            audit=self.audit,
            metrics=lambda: [SqlMetrics(self.engine)],
            config=ControllerConfig(pause_after_ticks=3, policy=GuardPolicy(slots=SLOTS)),
            holder=holder,
        )

    def evaluations(self, share: float, *, errors_on: int = 0, total: int = 20_000) -> None:
        """A minute of evaluations ending at the last whole slot (the newest a tick
        judges): `share` of them on the treatment ("on"), `errors_on` of those failed."""
        start = last_whole_slot(slot=SLOTS.slot) - timedelta(seconds=60)
        on = round(total * share)
        env, flag = self.environment, self.flag
        rows = [
            EvaluationRollup(start, 60, env, flag, "on", "split", on - errors_on),
            EvaluationRollup(start, 60, env, flag, "off", "split", total - on),
        ]
        if errors_on:
            rows.append(EvaluationRollup(start, 60, env, flag, "on", "error", errors_on, errors_on))
        insert_rollups(self.engine, rows)

    def after_the_step(self) -> None:
        """Wait until evaluations written now fall in a whole slot of the step that
        began a moment ago (two slots of `controller`'s 1 s)."""
        time.sleep(2 * SLOTS.slot)

    def set_plan(
        self, who: Identity = OPERATOR, seen_version: int = 0, **changes: object
    ) -> RolloutPlan:
        """`who` sets a plan (10, 25, 50, 100 %, soak 30 min, `GATES`; `changes` override)."""
        options: dict[str, object] = {
            "steps": (10.0, 25.0, 50.0, 100.0),
            "soak": timedelta(minutes=30),
            "gates": frozenset(GATES),
        }
        return set_plan(
            self.plans,
            self.audit,
            who,
            self.backend.load(self.environment),
            self.flag,
            PlanOptions(**(options | changes)),  # type: ignore[arg-type]
            now=datetime.now(UTC),
            seen_version=seen_version,
        )

    def close(self) -> None:
        self.engine.dispose()
