"""Plans, events and the lease in a real SQLite database: one writer wins, a lease is
taken over only once expired."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.autopilot.model import AllowedHours, OnFailure, PlanStatus, RolloutPlan
from app.autopilot.store import PlanChanged, PlanStore, PlansUnavailable
from app.flags.model import FlagState
from app.metrics_db.database import open_database

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=90)


@pytest.fixture
def store(tmp_path: Path) -> PlanStore:
    return PlanStore(open_database(f"sqlite:///{tmp_path / 'metrics.db'}"))


def new_plan(**changes: object) -> RolloutPlan:
    plan = RolloutPlan(
        flag="new_checkout",
        environment="production",
        steps=(1.0, 5.0, 25.0),
        soak=timedelta(minutes=30),
        created_by="olga",
        created_at=T0,
        expected_state=FlagState.DISABLED,
        expected_percentage=0.0,
        on_failure=OnFailure.KILL,
        allowed_hours=AllowedHours.parse("mon-fri 09-17 Europe/Berlin"),
    )
    return replace(plan, **changes)  # type: ignore[arg-type]


def test_a_plan_round_trips_and_one_of_two_writers_wins(store: PlanStore) -> None:
    stored = store.add(new_plan())
    assert stored.version == 1 and stored.id > 0
    assert store.get("production", "new_checkout") == stored
    first = store.save(replace(stored, status=PlanStatus.PAUSED, status_reason="lunch"))
    assert first.version == 2
    with pytest.raises(PlanChanged) as lost:
        store.save(replace(stored, expected_percentage=1.0))  # read at version 1
    assert lost.value.current == first
    assert store.plans(statuses=[PlanStatus.ACTIVE]) == []
    assert store.plans(environment="production") == [first]


def test_replacing_a_plan_needs_the_version_the_person_saw(store: PlanStore) -> None:
    stored = store.add(new_plan())
    edited = store.add(replace(new_plan(steps=(5.0, 50.0)), version=stored.version + 1))
    assert (edited.id, edited.version, edited.steps) == (stored.id, 2, (5.0, 50.0))
    with pytest.raises(PlanChanged):
        store.add(replace(new_plan(steps=(10.0,)), version=stored.version + 1))  # stale edit


def test_the_lease_is_kept_by_its_holder_and_taken_over_only_once_expired(
    store: PlanStore,
) -> None:
    assert store.take_lease("autopilot", "one", T0, PERIOD, 30)
    assert not store.take_lease("autopilot", "two", T0 + timedelta(seconds=60), PERIOD, 30)
    assert store.take_lease("autopilot", "one", T0 + timedelta(seconds=60), PERIOD, 30)
    assert store.beat("autopilot", "one", T0 + timedelta(seconds=61), 0.4)
    # one goes silent: its lease ran until T0 + 150 s
    assert not store.take_lease("autopilot", "two", T0 + timedelta(seconds=149), PERIOD, 30)
    assert store.take_lease("autopilot", "two", T0 + timedelta(seconds=151), PERIOD, 30)
    assert not store.beat("autopilot", "one", T0 + timedelta(seconds=152), 0.4)
    beat = store.heartbeat("autopilot")
    assert beat is not None
    assert (beat.holder, beat.ticks, beat.last_tick_seconds) == ("two", 1, 0.4)
    assert beat.acquired_at == T0 + timedelta(seconds=151)


def test_a_released_lease_is_taken_at_once(store: PlanStore) -> None:
    assert store.take_lease("autopilot", "one", T0, PERIOD, 30)
    store.release_lease("autopilot", "one", T0 + timedelta(seconds=5))
    assert store.take_lease("autopilot", "two", T0 + timedelta(seconds=6), PERIOD, 30)


def test_a_heartbeat_tells_a_dead_controller(store: PlanStore) -> None:
    assert store.heartbeat("autopilot") is None
    store.take_lease("autopilot", "one", T0, PERIOD, 30)
    store.beat("autopilot", "one", T0, 0.2)
    beat = store.heartbeat("autopilot")
    assert beat is not None
    assert beat.lag_seconds(T0 + timedelta(seconds=20)) == 0
    assert not beat.is_dead(T0 + timedelta(seconds=80))
    assert beat.lag_seconds(T0 + timedelta(seconds=100)) == 70
    assert beat.is_dead(T0 + timedelta(seconds=100))


def test_no_database_is_a_clear_error() -> None:
    with pytest.raises(PlansUnavailable, match="rollout plans need the metrics database"):
        PlanStore(None).plans()


def test_the_autopilots_notes_keep_the_version_and_the_action_count_only_rises(
    store: PlanStore,
) -> None:
    stored = store.add(new_plan())
    noted = store.note(
        replace(stored, last_decision="waited: soak 1 min of 30 min", actions_taken=3)
    )
    again = store.get("production", "new_checkout")
    assert again is not None
    assert (again.version, again.last_decision, again.actions_taken) == (
        1,
        "waited: soak 1 min of 30 min",
        3,
    )
    # a person's pause from the copy read before the note: no conflict, count kept
    paused = store.save(replace(stored, status=PlanStatus.PAUSED))
    after = store.get("production", "new_checkout")
    assert after is not None and (after.version, after.actions_taken) == (2, 3)
    assert paused.version == 2
    with pytest.raises(PlanChanged):
        store.note(noted)  # at version 1: the person's change wins
    # a replaced plan's keys go on after the old plan's
    replaced = store.add(replace(new_plan(steps=(5.0,)), version=3))
    assert replaced.actions_taken == 3


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_census_counts_plans_by_status_and_those_paused_for_lack_of_data(
    backend: str, tmp_path: Path
) -> None:
    from tests.conftest import fresh_postgres_database

    def count(store: PlanStore) -> None:
        paused = {"status": PlanStatus.PAUSED, "status_by": "autopilot"}
        for flag, changes in (
            ("a", {}),
            ("b", {}),
            ("c", {**paused, "ticks_without_data": 10}),  # paused for lack of data
            ("d", {**paused, "ticks_without_data": 0}),  # paused by the autopilot otherwise
            ("e", {"status": PlanStatus.PAUSED, "status_by": "olga", "ticks_without_data": 3}),
            ("f", {"status": PlanStatus.ABORTED, "status_by": "olga"}),
        ):
            store.add(new_plan(flag=flag, **changes))
        census = store.census()
        assert census.by_status == {"active": 2, "paused": 3, "aborted": 1}
        assert census.paused_without_data == 1

    if backend == "sqlite":
        count(PlanStore(open_database(f"sqlite:///{tmp_path / 'metrics.db'}")))
        return
    with fresh_postgres_database("rollout_census") as url:
        engine = open_database(url)
        try:
            count(PlanStore(engine))
        finally:
            engine.dispose()
