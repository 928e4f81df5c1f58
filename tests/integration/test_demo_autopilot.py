"""The demo's autopilot as `rollout-dashboard demo` starts it: a child process that seeds
two plans in an empty demo database and ticks until SIGTERM, on the bundled flags and
the simulator's roll-ups in SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.audit import AuditLog
from app.autopilot.model import PlanStatus
from app.autopilot.store import PlanStore
from app.demo.autopilot_demo import (
    FAILING_FLAG,
    GATES,
    HEALTHY_FLAG,
    SEEDED_BY,
    autopilot_environment,
    seed_demo_plans,
    simulator_options,
)
from app.demo.launcher import prepare_state_dir
from app.demo.simulator import FailingTreatment, Workload, backfill
from app.metrics_db.database import open_database
from app.runtime import open_runtime
from app.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    """The demo's state directory with two minutes of simulated history up to now."""
    flags = prepare_state_dir(tmp_path)
    env = {
        "ROLLOUT_STATE_DIR": str(tmp_path),
        "ROLLOUT_FLAGS_FILE": str(flags),
        "ROLLOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}",
        "ROLLOUT_DEMO": "true",
        **autopilot_environment(),
        "ROLLOUT_AUTOPILOT_INTERVAL_SECONDS": "0.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    engine = open_database(env["ROLLOUT_DATABASE_URL"])
    failing = [FailingTreatment.parse(simulator_options()[1])]
    workload = Workload(flags, CollectorRegistry(), failing=failing)
    now = datetime.now(UTC)
    backfill(workload, engine, now, minutes=2, interval=10.0)
    workload.report_instances(engine, now)
    engine.dispose()
    return tmp_path


def test_the_demo_autopilot_seeds_two_plans_ticks_and_stops_cleanly(demo_state: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "app.demo.autopilot_demo"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = PlanStore(open_database(os.environ["ROLLOUT_DATABASE_URL"]))
    try:
        deadline = time.monotonic() + 120  # a bound on a hang, not a timing assertion
        beat = None
        while time.monotonic() < deadline and process.poll() is None:
            beat = store.heartbeat("autopilot")
            if beat is not None and beat.ticks >= 2:
                break
            time.sleep(0.2)
        assert beat is not None and beat.ticks >= 2, process.poll()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert f"demo autopilot: plan set for {HEALTHY_FLAG}: 5 → 10 → 25 → 50 %, soak 45 s" in out
    assert f"demo autopilot: plan set for {FAILING_FLAG}: 5 → 10 → 25 → 50 %, soak 45 s" in out
    assert out.rstrip().endswith("stopped, lease released")

    plans = {plan.flag: plan for plan in store.plans("production")}
    assert sorted(plans) == sorted([HEALTHY_FLAG, FAILING_FLAG])
    for plan in plans.values():
        assert (plan.steps, plan.soak.total_seconds(), plan.gates) == (
            (5.0, 10.0, 25.0, 50.0),
            45.0,
            GATES,
        )
        assert plan.created_by == SEEDED_BY
        assert plan.last_decision != "plan set: the next tick looks at it"  # a tick decided
    beat = store.heartbeat("autopilot")
    assert beat is not None and beat.holder.startswith("demo:")
    assert beat.interval_seconds == 0.5
    assert beat.expires_at < datetime.now(UTC)  # released: a restarted demo leads at once

    settings = load_settings()
    audit = AuditLog(open_database(settings.resolved_database_url), settings.journal_file)
    seeded = [e for e in audit.entries() if e.action == "plan_set"]
    assert sorted((e.actor, e.flag) for e in seeded) == [
        (SEEDED_BY, FAILING_FLAG),
        (SEEDED_BY, HEALTHY_FLAG),
    ]


def test_a_restarted_demo_keeps_its_plans(demo_state: Path):
    runtime = open_runtime(load_settings())
    first = seed_demo_plans(runtime, datetime.now(UTC))
    assert [p.flag for p in first] == [HEALTHY_FLAG, FAILING_FLAG]
    paused = runtime.plans.save(replace(first[0], status=PlanStatus.PAUSED))
    assert seed_demo_plans(runtime, datetime.now(UTC)) == []
    kept = runtime.plans.get("production", HEALTHY_FLAG)
    assert kept is not None and kept.status is PlanStatus.PAUSED
    assert kept.version == paused.version
