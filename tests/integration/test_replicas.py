"""Two dashboard replicas sharing one PostgreSQL change the same flag at once: no
change is lost, every attempt ends done, past its bound (2), or in a conflict (3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.flags.loader import environments, load_config
from app.flags.sql_backend import SqlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.exit_codes import ExitCode
from tests.conftest import POSTGRES_ADMIN
from tests.support.bundled import copy_bundled_config

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
FLAG = "ab_testing"
ENV = "production"
ATTEMPTS = 15
START = 100.0

# One replica: imports once (the CLI takes seconds to import here), waits for the common
# start time, then runs `rollout-dashboard rollback FLAG --to PCT --json` per target,
# each with a fresh runtime, as separate CLI invocations in this process would.
_REPLICA = """
import contextlib, io, json, sys, time
from app.cli import main

name, start_at, *targets = sys.argv[1:]
time.sleep(max(0.0, float(start_at) - time.time()))
for target in targets:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([
            "rollback", "ab_testing", "--to", target,
            "--env", "production", "--reason", "replica race", "--actor", name, "--json",
        ])
    print(json.dumps({"to": float(target), "exit": int(code), "reply": out.getvalue()}),
          flush=True)
"""


@pytest.fixture(scope="module")
def replica_database_url() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL: the race needs a known start."""
    name = f"rollout_replicas_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error}); start it first")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _flags_file(directory: Path) -> Path:
    """A copy of the bundled flag files with the raced flag at 100 % in production."""
    copy_bundled_config(directory)
    production = directory / "feature_flags_production.yaml"
    text = production.read_text()
    assert "rollout: {percentage: 25.0}" in text
    production.write_text(
        text.replace("rollout: {percentage: 25.0}", "rollout: {percentage: 100.0}", 1)
    )
    return directory / "feature_flags.yaml"


def _environment(database_url: str, flags_file: Path, state_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    return {
        **clean,
        "ROLLOUT_FLAG_BACKEND": "sql",
        "ROLLOUT_DATABASE_URL": database_url,
        "ROLLOUT_DEMO": "true",
        "ROLLOUT_FLAGS_FILE": str(flags_file),
        # each replica has its own disk: only PostgreSQL is shared
        "ROLLOUT_STATE_DIR": str(state_dir),
    }


@dataclass(frozen=True)
class Race:
    #: per attempt: the exit code and the `--json` reply
    attempts: list[tuple[int, dict[str, Any]]]
    #: `rollout-dashboard audit --json` records of the raced flag afterwards
    records: list[dict[str, Any]]
    #: the flag's percentage in PostgreSQL afterwards
    final_percentage: float


@pytest.fixture(scope="module")
def race(replica_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Race:
    """Both replicas' rollbacks, run once for every check below."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    flags_file = _flags_file(tmp_path)
    # seed the shared flags once, as the first replica to start would
    engine = open_database(replica_database_url)
    backend = SqlFlagBackend(engine)
    for environment in dict.fromkeys([ENV, *environments(flags_file)]):
        backend.import_config(environment, load_config(flags_file, environment))
    assert backend.load(ENV).flag(FLAG).percentage == START

    # replica A goes for 99, 97, … and replica B for 98, 96, …: each target is valid
    # only while the flag is above it, so the two keep overtaking each other
    targets = {
        "replica-a": [f"{START - 1 - 2 * i:g}" for i in range(ATTEMPTS)],
        "replica-b": [f"{START - 2 - 2 * i:g}" for i in range(ATTEMPTS)],
    }
    start_at = time.time() + 20  # both have imported the CLI by then
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", _REPLICA, name, f"{start_at}", *steps],
            cwd=ROOT,
            env=_environment(replica_database_url, flags_file, tmp_path / name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, steps in targets.items()
    }
    attempts: list[tuple[int, dict[str, Any]]] = []
    for process in processes.values():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        for line in out.splitlines():
            attempt = json.loads(line)
            attempts.append((int(attempt["exit"]), json.loads(attempt["reply"])))

    audit = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "--flag", FLAG, "--json", "--limit", "500"],
        cwd=ROOT,
        env=_environment(replica_database_url, flags_file, tmp_path / "auditor"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    records = [r for r in json.loads(audit.stdout)["records"] if r["environment"] == ENV]
    final = backend.load(ENV).flag(FLAG).percentage
    engine.dispose()
    return Race(attempts, records, final)


def test_every_attempt_is_done_past_its_bound_or_a_conflict(race: Race) -> None:
    codes = Counter(code for code, _ in race.attempts)
    print(f"replica race: exit codes {dict(codes)} over {len(race.attempts)} attempts")
    assert len(race.attempts) == 2 * ATTEMPTS
    assert set(codes) <= {ExitCode.DONE, ExitCode.USAGE, ExitCode.CONFLICT}
    assert codes[ExitCode.DONE] > 0
    for code, reply in race.attempts:
        assert reply["applied"] == (code == ExitCode.DONE), reply


def test_no_update_is_lost(race: Race) -> None:
    """Each applied change (in audit id order) moved the flag from where the previous
    one left it, and the last one is what PostgreSQL holds."""
    applied = sorted(
        (reply for code, reply in race.attempts if code == ExitCode.DONE),
        key=lambda reply: int(reply["audit_id"]),
    )
    current = START
    for reply in applied:
        assert reply["from"]["percentage"] == current, applied
        assert reply["to"]["percentage"] < current
        current = reply["to"]["percentage"]
    assert race.final_percentage == current


def test_the_audit_log_records_each_applied_change_as_applied(race: Race) -> None:
    applied_ids = {reply["audit_id"] for code, reply in race.attempts if code == ExitCode.DONE}
    recorded = {r["id"] for r in race.records if r["outcome"] == "applied"}
    assert recorded == applied_ids, [r for r in race.records if r["id"] in applied_ids ^ recorded]
    assert not [r for r in race.records if r["outcome"] == "pending"]
