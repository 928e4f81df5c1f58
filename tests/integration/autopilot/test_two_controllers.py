"""Several autopilot controllers on one PostgreSQL: exactly one acts, and a leader killed
with `kill -9` mid-tick is replaced by the standby without any step applied twice or
lost. Evidence: roll-ups following the flags, written into the same database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.audit import AuditEntry, Outcome
from app.autopilot.controller import LEASE, Controller, TickReport
from app.autopilot.model import PlanOptions, PlanStatus, RolloutPlan
from app.autopilot.service import set_plan
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.conftest import fresh_postgres_database
from tests.support.autopilot_process import STALL_POINTS
from tests.support.bundled import copy_bundled_config
from tests.support.identities import OPERATOR
from tests.support.rollup_feeder import RollupFeeder

pytestmark = pytest.mark.postgres

ENV = "production"
#: flag -> the plan's steps (each flag starts at its first step: 10 % and 25 %)
PLANS = {"phase1_config_externalization": (10.0, 25.0, 50.0), "ab_testing": (25.0, 50.0)}
#: every step each plan must take, in order: (flag, from, to)
EXPECTED = [
    ("ab_testing", 25.0, 50.0),
    ("phase1_config_externalization", 10.0, 25.0),
    ("phase1_config_externalization", 25.0, 50.0),
]
GATES = frozenset({"data_fresh", "error_rate", "soak_time", "dependencies", "exposure"})
LEASE_SECONDS = 3.0
SETTINGS = {
    "ROLLOUT_ENVIRONMENT": ENV,
    "ROLLOUT_AUTOPILOT_INTERVAL_SECONDS": "0.5",
    "ROLLOUT_AUTOPILOT_LEASE_SECONDS": f"{LEASE_SECONDS:g}",
    "ROLLOUT_AUTOPILOT_WINDOW_SECONDS": "5",
    "ROLLOUT_EVIDENCE_SLOT_SECONDS": "1",  # a step judged once its first second has ended
    "ROLLOUT_AUTOPILOT_PAUSE_AFTER_TICKS": "20",
    "ROLLOUT_STALE_AFTER_SECONDS": "10",
}


@dataclass
class Shared:
    """One PostgreSQL database and one flags directory, as several processes see them."""

    environment: dict[str, str]
    state: Path

    def runtime(self) -> Runtime:
        overrides = {
            key.removeprefix("ROLLOUT_").lower(): value for key, value in self.environment.items()
        }
        return open_runtime(load_settings(**overrides))


@pytest.fixture
def shared(tmp_path: Path, no_rollout_environment: None) -> Iterator[Shared]:
    copy_bundled_config(tmp_path)
    with fresh_postgres_database("rollout_autopilot") as url:
        yield Shared(
            {
                **SETTINGS,
                "ROLLOUT_DATABASE_URL": url,
                "ROLLOUT_STATE_DIR": str(tmp_path),
                "ROLLOUT_FLAGS_FILE": str(tmp_path / "feature_flags.yaml"),
            },
            tmp_path,
        )


def plans(runtime: Runtime) -> dict[str, RolloutPlan]:
    return {
        flag: set_plan(
            runtime.plans,
            runtime.audit,
            OPERATOR,
            runtime.backend.load(ENV),
            flag,
            PlanOptions(steps=steps, soak=timedelta(0), gates=GATES, stop_at=50),
            now=datetime.now(UTC),
        )
        for flag, steps in PLANS.items()
    }


def finished(runtime: Runtime) -> bool:
    stored = runtime.plans.plans(ENV)
    return len(stored) == len(PLANS) and all(p.expected_percentage == 50.0 for p in stored)


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


def autopilot_records(runtime: Runtime) -> list[AuditEntry]:
    """Every record of an action (not of a plan change), oldest first."""
    return [
        e
        for e in reversed(runtime.audit.entries(environment=ENV))
        if e.action in ("advance", "rollback", "kill")
    ]


def assert_each_step_applied_once_in_order(runtime: Runtime) -> None:
    records = autopilot_records(runtime)
    applied = [r for r in records if r.outcome is Outcome.APPLIED]
    steps = [(r.flag, r.from_percentage, r.to_percentage) for r in applied]
    assert sorted(steps) == EXPECTED, steps  # each step once: none twice, none lost
    for flag in PLANS:  # and in order per flag
        own = [s for s in steps if s[0] == flag]
        assert own == sorted(own, key=lambda s: s[1]), own
    assert all(r.actor == "autopilot" for r in applied)
    assert len({r.idempotency_key for r in records}) == len(records)
    assert not [r for r in records if r.outcome is Outcome.PENDING], records
    snapshot = runtime.backend.load(ENV)
    assert {flag: snapshot.flag(flag).percentage for flag in PLANS} == dict.fromkeys(PLANS, 50.0)
    stored = runtime.plans.plans(ENV)
    assert all(p.status is PlanStatus.ACTIVE for p in stored), [p.status_reason for p in stored]


def test_two_controllers_ticking_at_once_apply_each_plan_step_exactly_once(
    shared: Shared,
) -> None:
    one, two = shared.runtime(), shared.runtime()
    plans(one)
    reports: dict[str, list[TickReport]] = {"one": [], "two": []}
    stop = threading.Event()

    def ticking(controller: Controller, said: list[TickReport]) -> None:
        while not stop.is_set():
            said.append(controller.tick())
            time.sleep(0.05)

    threads = [
        threading.Thread(target=ticking, args=(runtime.autopilot(name), reports[name]))
        for name, runtime in (("one", one), ("two", two))
    ]
    with RollupFeeder(one.engine, one.backend, ENV, list(PLANS)):  # type: ignore[arg-type]
        for thread in threads:
            thread.start()
        try:
            wait_until("every plan at 50 %", lambda: finished(one), timeout=90)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    leaders = {name for name, said in reports.items() for r in said if r.leader}
    standbys = {name for name, said in reports.items() for r in said if not r.leader}
    assert len(leaders) == 1 and standbys == {"one", "two"} - leaders  # both ticked; one led
    assert_each_step_applied_once_in_order(two)


def start_leader(shared: Shared, stall_at: str, marker: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    log = (shared.state / "leader.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.autopilot_process",
            "leader",
            "--stall-at",
            stall_at,
            "--marker",
            str(marker),
        ],
        env={**clean, **shared.environment},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("stall_at", STALL_POINTS)
def test_kill_9_of_the_leader_mid_tick_the_standby_takes_over_and_nothing_is_applied_twice_or_lost(
    shared: Shared, stall_at: str
) -> None:
    runtime = shared.runtime()
    plans(runtime)
    marker = shared.state / "stalled"
    with RollupFeeder(runtime.engine, runtime.backend, ENV, list(PLANS)):  # type: ignore[arg-type]
        leader = start_leader(shared, stall_at, marker)
        try:
            wait_until(f"the leader stalled {stall_at}", marker.exists, timeout=60)
        finally:
            leader.send_signal(signal.SIGKILL)
            leader.wait(timeout=10)
        killed_at = datetime.now(UTC)
        beat = runtime.plans.heartbeat(LEASE)
        assert beat is not None and beat.holder == "leader"

        stop = threading.Event()
        standby = runtime.autopilot("standby")
        thread = threading.Thread(target=standby.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until("every plan at 50 % by the standby", lambda: finished(runtime), 90)
        finally:
            stop.set()
            thread.join(timeout=30)
    taken = runtime.plans.heartbeat(LEASE)
    assert taken is not None and taken.holder == "standby"
    print(
        f"\n{stall_at}: the standby led {(taken.acquired_at - killed_at).total_seconds():.2f} s "
        f"after kill -9 (lease {LEASE_SECONDS:g} s, interval 0.5 s)"
    )
    assert_each_step_applied_once_in_order(runtime)
