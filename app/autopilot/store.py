"""Rollout plans, the autopilot's events and its lease, in the metrics database.

Every write of a plan is a conditional update from the version read: of two writers
(two controllers, a controller and a person pressing Pause), exactly one wins and the
other gets `PlanChanged` with the plan as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.autopilot.model import (
    AUTOPILOT_ACTOR,
    AllowedHours,
    OnFailure,
    PlanStatus,
    RolloutPlan,
)
from app.errors import RolloutError
from app.flags.model import FlagState
from app.metrics_db.schema import AutopilotEventRow, AutopilotLeaseRow, RolloutPlanRow
from app.rollout.guards import GuardName

__all__ = [
    "AutopilotEvent",
    "Heartbeat",
    "PlanCensus",
    "PlanChanged",
    "PlanStore",
    "PlansUnavailable",
]


class PlansUnavailable(RolloutError, RuntimeError):
    """The metrics database, which holds the plans, cannot be used."""

    def __init__(self, why: str) -> None:
        super().__init__(f"rollout plans need the metrics database, which {why}")


class PlanChanged(RolloutError, RuntimeError):
    """The plan was changed since it was read (another controller or a person):
    `current` is it now (None: it was removed)."""

    def __init__(self, current: RolloutPlan | None) -> None:
        super().__init__("the plan was changed meanwhile")
        self.current = current


@dataclass(frozen=True)
class AutopilotEvent:
    """What the autopilot did about a plan: an advance, a rollback, a kill or a pause.
    For a rollback, `failure_seen_at` is when a tick first saw the gate failing and `at`
    when the rollback was applied: the time to mitigate is their difference."""

    plan_id: int
    at: datetime
    environment: str
    flag: str
    kind: str
    from_percentage: float
    to_percentage: float
    text: str
    gate: dict[str, Any] | None = None
    audit_id: str = ""
    failure_seen_at: datetime | None = None
    mitigated_at: datetime | None = None
    id: int = 0

    @property
    def seconds_to_mitigate(self) -> float | None:
        if self.failure_seen_at is None:
            return None
        return max(0.0, (self.at - self.failure_seen_at).total_seconds())


@dataclass(frozen=True)
class Heartbeat:
    """The lease row: who leads, since when, and the last tick (its time and duration)."""

    holder: str
    acquired_at: datetime
    expires_at: datetime
    last_tick_at: datetime | None
    last_tick_seconds: float | None
    interval_seconds: float
    ticks: int

    def lag_seconds(self, now: datetime) -> float | None:
        """How long past its interval the next tick is (0 while on time)."""
        if self.last_tick_at is None:
            return None
        return max(0.0, (now - self.last_tick_at).total_seconds() - self.interval_seconds)

    def is_dead(self, now: datetime) -> bool:
        """No tick for three intervals, or the lease ran out: nobody is acting."""
        lag = self.lag_seconds(now)
        return now > self.expires_at or lag is None or lag > 2 * self.interval_seconds


@dataclass(frozen=True)
class PlanCensus:
    """The plans by status, and the paused ones the autopilot paused for lack of data."""

    by_status: dict[str, int]
    paused_without_data: int


class PlanStore:
    """The plans of one metrics database (None: unavailable)."""

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine

    # plans

    def add(self, plan: RolloutPlan) -> RolloutPlan:
        """Store a new plan, or replace the flag's plan of `plan.version - 1` (the one the
        person saw): PlanChanged when someone changed it meanwhile."""
        engine = self._usable()
        plan = replace(plan, status_at=plan.status_at or plan.created_at)
        values = _row(plan)
        try:
            with engine.begin() as connection:
                existing = connection.execute(
                    select(
                        RolloutPlanRow.id, RolloutPlanRow.version, RolloutPlanRow.actions_taken
                    ).where(
                        RolloutPlanRow.environment == plan.environment,
                        RolloutPlanRow.flag == plan.flag,
                    )
                ).first()
                if existing is None:
                    new_id = connection.execute(
                        insert(RolloutPlanRow)
                        .values(**values, version=1)
                        .returning(RolloutPlanRow.id)
                    ).scalar_one()
                    return replace(plan, id=int(new_id), version=1)
                if existing.version != plan.version - 1:
                    raise PlanChanged(self.get(plan.environment, plan.flag))
                # the plan's idempotency keys go on from where the replaced plan's ended:
                # a key it spent is never the new plan's
                plan = replace(plan, actions_taken=max(plan.actions_taken, existing.actions_taken))
                values = _row(plan)
                moved = connection.execute(
                    update(RolloutPlanRow)
                    .where(
                        RolloutPlanRow.id == existing.id,
                        RolloutPlanRow.version == existing.version,
                    )
                    .values(**values, version=existing.version + 1)
                ).rowcount
                if moved != 1:
                    raise PlanChanged(self.get(plan.environment, plan.flag))
                return replace(plan, id=int(existing.id), version=existing.version + 1)
        except IntegrityError:  # two first plans for one flag at once: the other won
            raise PlanChanged(self.get(plan.environment, plan.flag)) from None
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be written ({type(error).__name__})") from None

    def save(self, plan: RolloutPlan) -> RolloutPlan:
        """Write `plan` over the stored version `plan.version`; returns it one version up.
        PlanChanged when the stored plan is no longer that version."""
        plan = replace(plan, status_at=plan.status_at or plan.created_at)
        self._write(plan, _row(plan) | {"version": plan.version + 1})
        return replace(plan, version=plan.version + 1)

    def note(self, plan: RolloutPlan) -> RolloutPlan:
        """Write only what the autopilot keeps for itself (its last decision, the ticks
        without data, when failing began, its next look, its action count) over version
        `plan.version`, which stays: a tick that only waited never makes a person's Pause
        or edit of the plan they see conflict. PlanChanged when the version moved."""
        self._write(plan, {name: _row(plan)[name] for name in _BOOKKEEPING})
        return plan

    def _write(self, plan: RolloutPlan, values: dict[str, Any]) -> None:
        """`values` over version `plan.version`. The action count only rises: a person's
        write, from a copy read before the autopilot's last notes, never takes it back."""
        counted = RolloutPlanRow.actions_taken
        values["actions_taken"] = case(
            (counted > plan.actions_taken, counted), else_=plan.actions_taken
        )
        engine = self._usable()
        try:
            with engine.begin() as connection:
                moved = connection.execute(
                    update(RolloutPlanRow)
                    .where(RolloutPlanRow.id == plan.id, RolloutPlanRow.version == plan.version)
                    .values(**values)
                ).rowcount
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be written ({type(error).__name__})") from None
        if moved != 1:
            raise PlanChanged(self.get(plan.environment, plan.flag))

    def remove(self, plan: RolloutPlan) -> None:
        """Delete `plan` at its version (tests, a flag that no longer exists)."""
        with self._usable().begin() as connection:
            connection.execute(
                delete(RolloutPlanRow).where(
                    RolloutPlanRow.id == plan.id, RolloutPlanRow.version == plan.version
                )
            )

    def get(self, environment: str, flag: str) -> RolloutPlan | None:
        found = self._plans(RolloutPlanRow.environment == environment, RolloutPlanRow.flag == flag)
        return found[0] if found else None

    def plans(
        self, environment: str | None = None, statuses: Sequence[PlanStatus] = ()
    ) -> list[RolloutPlan]:
        """Every plan (of `environment`, in `statuses`), by environment and flag."""
        conditions: list[Any] = []
        if environment is not None:
            conditions.append(RolloutPlanRow.environment == environment)
        if statuses:
            conditions.append(RolloutPlanRow.status.in_([str(s) for s in statuses]))
        return self._plans(*conditions)

    def census(self) -> PlanCensus:
        """How many plans are in each status, and how many of the paused ones the
        autopilot paused after ticks without data (one grouped query)."""
        from sqlalchemy import func

        without = RolloutPlanRow.ticks_without_data > 0
        query = select(
            RolloutPlanRow.status, RolloutPlanRow.status_by, without, func.count()
        ).group_by(RolloutPlanRow.status, RolloutPlanRow.status_by, without)
        by_status: dict[str, int] = dict.fromkeys((str(s) for s in PlanStatus), 0)
        without_data = 0
        for status, by, no_data, count in self._read(query):
            by_status[str(status)] = by_status.get(str(status), 0) + int(count)
            paused = str(status) == str(PlanStatus.PAUSED) and by == AUTOPILOT_ACTOR
            without_data += int(count) if paused and no_data else 0
        return PlanCensus(by_status, without_data)

    def _plans(self, *conditions: Any) -> list[RolloutPlan]:
        query = (
            select(RolloutPlanRow.__table__)
            .where(*conditions)
            .order_by(RolloutPlanRow.environment, RolloutPlanRow.flag)
        )
        return [_plan(row) for row in self._read(query)]

    # events

    def add_event(self, event: AutopilotEvent) -> AutopilotEvent:
        engine = self._usable()
        values = {
            "plan_id": event.plan_id,
            "at": event.at,
            "environment": event.environment,
            "flag": event.flag,
            "kind": event.kind,
            "from_percentage": event.from_percentage,
            "to_percentage": event.to_percentage,
            "text": event.text,
            "gate": event.gate,
            "audit_id": event.audit_id,
            "failure_seen_at": event.failure_seen_at,
            "mitigated_at": event.mitigated_at,
        }
        try:
            with engine.begin() as connection:
                new_id = connection.execute(
                    insert(AutopilotEventRow).values(**values).returning(AutopilotEventRow.id)
                ).scalar_one()
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be written ({type(error).__name__})") from None
        return replace(event, id=int(new_id))

    def events(
        self, plan_id: int | None = None, *, environment: str | None = None, limit: int = 200
    ) -> list[AutopilotEvent]:
        """Newest first."""
        conditions: list[Any] = []
        if plan_id is not None:
            conditions.append(AutopilotEventRow.plan_id == plan_id)
        if environment is not None:
            conditions.append(AutopilotEventRow.environment == environment)
        query = (
            select(AutopilotEventRow.__table__)
            .where(*conditions)
            .order_by(AutopilotEventRow.id.desc())
            .limit(limit)
        )
        return [
            AutopilotEvent(
                plan_id=row.plan_id,
                at=row.at,
                environment=row.environment,
                flag=row.flag,
                kind=row.kind,
                from_percentage=row.from_percentage,
                to_percentage=row.to_percentage,
                text=row.text,
                gate=row.gate,
                audit_id=row.audit_id,
                failure_seen_at=row.failure_seen_at,
                mitigated_at=row.mitigated_at,
                id=row.id,
            )
            for row in self._read(query)
        ]

    # the lease

    def take_lease(
        self, name: str, holder: str, now: datetime, period: timedelta, interval: float
    ) -> bool:
        """Hold (or keep holding) lease `name` until `now + period`: True when `holder`
        has it. It is taken over only once expired; of two standbys, one gets it."""
        engine = self._usable()
        values = {"holder": holder, "expires_at": now + period, "interval_seconds": interval}
        try:
            with engine.begin() as connection:
                kept = connection.execute(
                    update(AutopilotLeaseRow)
                    .where(AutopilotLeaseRow.name == name, AutopilotLeaseRow.holder == holder)
                    .values(**values)
                ).rowcount
                if kept == 1:
                    return True
                taken = connection.execute(
                    update(AutopilotLeaseRow)
                    .where(AutopilotLeaseRow.name == name, AutopilotLeaseRow.expires_at < now)
                    .values(**values, acquired_at=now)
                ).rowcount
                if taken == 1:
                    return True
            with engine.begin() as connection:
                connection.execute(
                    insert(AutopilotLeaseRow).values(name=name, acquired_at=now, ticks=0, **values)
                )
            return True
        except IntegrityError:  # the row exists and someone else holds it
            return False
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be written ({type(error).__name__})") from None

    def release_lease(self, name: str, holder: str, now: datetime) -> None:
        """Let a standby take over at once (a controller stopping cleanly)."""
        try:
            with self._usable().begin() as connection:
                connection.execute(
                    update(AutopilotLeaseRow)
                    .where(AutopilotLeaseRow.name == name, AutopilotLeaseRow.holder == holder)
                    .values(expires_at=now - timedelta(seconds=1))
                )
        except SQLAlchemyError:
            pass  # it expires by itself

    def beat(self, name: str, holder: str, at: datetime, seconds: float) -> bool:
        """Record a finished tick of the leader; False when `holder` no longer leads."""
        try:
            with self._usable().begin() as connection:
                row = connection.execute(
                    select(AutopilotLeaseRow.ticks).where(
                        AutopilotLeaseRow.name == name, AutopilotLeaseRow.holder == holder
                    )
                ).first()
                if row is None:
                    return False
                connection.execute(
                    update(AutopilotLeaseRow)
                    .where(AutopilotLeaseRow.name == name, AutopilotLeaseRow.holder == holder)
                    .values(last_tick_at=at, last_tick_seconds=seconds, ticks=row.ticks + 1)
                )
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be written ({type(error).__name__})") from None
        return True

    def heartbeat(self, name: str) -> Heartbeat | None:
        """The lease row `name`, None when no controller ever ran."""
        rows = self._read(select(AutopilotLeaseRow.__table__).where(AutopilotLeaseRow.name == name))
        if not rows:
            return None
        row = rows[0]
        return Heartbeat(
            row.holder,
            row.acquired_at,
            row.expires_at,
            row.last_tick_at,
            row.last_tick_seconds,
            row.interval_seconds,
            row.ticks,
        )

    def _usable(self) -> Engine:
        if self._engine is None:
            raise PlansUnavailable("is unavailable")
        return self._engine

    def _read(self, query: Any) -> list[Any]:
        engine = self._usable()
        try:
            with engine.connect() as connection:
                return list(connection.execute(query).all())
        except SQLAlchemyError as error:
            raise PlansUnavailable(f"cannot be read ({type(error).__name__})") from None


#: the columns only the autopilot writes between a person's versions (`PlanStore.note`)
_BOOKKEEPING = (
    "last_decision",
    "last_decision_at",
    "ticks_without_data",
    "failing_since",
    "next_at",
    "actions_taken",
)


def _row(plan: RolloutPlan) -> dict[str, Any]:
    return {
        "environment": plan.environment,
        "flag": plan.flag,
        "steps": list(plan.steps),
        "soak_seconds": plan.soak.total_seconds(),
        "gates": sorted(plan.gates),
        "on_failure": str(plan.on_failure),
        "stop_at": plan.stop_at,
        "allowed_hours": plan.allowed_hours.as_json() if plan.allowed_hours else None,
        "dry_run": plan.dry_run,
        "budget": plan.budget,
        "status": str(plan.status),
        "status_reason": plan.status_reason,
        "status_by": plan.status_by,
        "status_at": plan.status_at or plan.created_at,
        "expected_state": str(plan.expected_state),
        "expected_percentage": plan.expected_percentage,
        "actions_taken": plan.actions_taken,
        "ticks_without_data": plan.ticks_without_data,
        "failing_since": plan.failing_since,
        "last_decision": plan.last_decision,
        "last_decision_at": plan.last_decision_at,
        "next_at": plan.next_at,
        "created_by": plan.created_by,
        "created_account": plan.created_account,
        "created_at": plan.created_at,
    }


def _plan(row: Any) -> RolloutPlan:
    hours = row.allowed_hours
    return RolloutPlan(
        flag=row.flag,
        environment=row.environment,
        steps=tuple(float(s) for s in row.steps),
        soak=timedelta(seconds=row.soak_seconds),
        created_by=row.created_by,
        created_at=row.created_at,
        expected_state=FlagState(row.expected_state),
        expected_percentage=row.expected_percentage,
        gates=frozenset(GuardName(gate) for gate in row.gates),
        on_failure=OnFailure(row.on_failure),
        stop_at=row.stop_at,
        allowed_hours=AllowedHours.from_json(hours) if hours else None,
        dry_run=bool(row.dry_run),
        budget=row.budget,
        status=PlanStatus(row.status),
        status_reason=row.status_reason,
        status_by=row.status_by,
        status_at=row.status_at,
        actions_taken=row.actions_taken,
        ticks_without_data=row.ticks_without_data,
        failing_since=row.failing_since,
        last_decision=row.last_decision,
        last_decision_at=row.last_decision_at,
        next_at=row.next_at,
        version=row.version,
        created_account=row.created_account,
        id=row.id,
    )
