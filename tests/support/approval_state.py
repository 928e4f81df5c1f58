"""A state directory on which an advance in production passes every guard, for the tests
of four-eyes approval that apply an approved request through the real guards.

The bundled six-phase config and the demo simulator's workload (`ab_testing` and
`canary_deployment` pass every guard in production) written into SQLite up to an hour
ahead, so the data stays fresh for the whole test session; the simulated instances'
heartbeats, which the propagation guard reads, last two minutes and are written again
by `fresh_heartbeats`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from app.demo.simulator import Workload, backfill
from app.metrics_db.database import open_database
from app.metrics_db.schema import InstanceReport
from tests.support.bundled import copy_bundled_config

__all__ = ["copy_state", "fresh_heartbeats", "simulated_state", "start_simulator"]

#: the files of a state directory the tests copy (the flags and the metrics database)
_FILES = ("feature_flags*.yaml", "metrics.db")


def simulated_state(state: Path, *, minutes_ahead: int = 60) -> Path:
    """Fill `state` with the bundled config and 30 minutes of simulated traffic plus
    `minutes_ahead` beyond now; returns `state`."""
    state.mkdir(parents=True, exist_ok=True)
    copy_bundled_config(state)
    engine = open_database(f"sqlite:///{state / 'metrics.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    workload = Workload(state / "feature_flags.yaml", CollectorRegistry())
    backfill(workload, engine, now + timedelta(minutes=minutes_ahead), 30 + minutes_ahead, 10.0)
    engine.dispose()
    return state


def copy_state(template: Path, state: Path) -> Path:
    """A copy of `template`'s flags and database in `state` (created), heartbeats fresh."""
    state.mkdir(parents=True, exist_ok=True)
    for pattern in _FILES:
        for source in template.glob(pattern):
            shutil.copy(source, state / source.name)
    fresh_heartbeats(state)
    return state


def fresh_heartbeats(state: Path) -> None:
    """The simulated instances report, now, the config version they have loaded."""
    engine = open_database(f"sqlite:///{state / 'metrics.db'}")
    Workload(state / "feature_flags.yaml", CollectorRegistry()).report_instances(
        engine, datetime.now(UTC)
    )
    engine.dispose()


def start_simulator(state: Path) -> subprocess.Popen[bytes]:
    """The demo simulator (`python -m app.demo.simulator`) on `state`'s flags and SQLite,
    as `rollout-dashboard demo` runs it: 30 minutes of history, then live traffic and
    heartbeats every second, reloading the flags when they change. Returns once its
    instances have reported; the caller terminates it."""
    copy_bundled_config(state, keep_existing=True)
    url = f"sqlite:///{state / 'metrics.db'}"
    engine = open_database(url)  # migrated before two processes race to
    log = (state / "simulator.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.demo.simulator",
            "--flags-file",
            str(state / "feature_flags.yaml"),
            "--database-url",
            url,
            "--port",
            "0",
        ],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((state / "simulator.log").read_text()[-3000:])
            with engine.connect() as connection:
                reported = connection.execute(
                    select(func.count()).select_from(InstanceReport)
                ).scalar_one()
            if reported:
                return process
            time.sleep(0.3)
    finally:
        engine.dispose()
    process.kill()
    raise RuntimeError("the simulator wrote no heartbeat within 60 s")
