"""A safe start, run as a platform team would: real `rollout-dashboard` processes on an
empty SQLite file and an empty database on the real PostgreSQL.

Processes starting at once all succeed and migrate the schema once (under the migration
lock) and seed the sql flag backend once; `db upgrade / current / downgrade`; commands
that only read never migrate, even a database downgraded by hand; secrets read from
`<NAME>_FILE`, never quoted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from app.metrics_db.revisions import HEAD_REVISION, UPGRADE_COMMAND
from tests.conftest import fresh_postgres_database

FLAGS = """
version: "3.1"
phases:
  - {number: 1, name: First, planned_week: 1}
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1}
  beta:
    state: enabled
    metadata: {phase: 1}
  gamma:
    state: rollout
    rollout: {percentage: 5}
    metadata: {phase: 1}
"""
STAGING = "flags:\n  alpha:\n    rollout: {percentage: 10}\n"
#: a password that must never appear in any output
PASSWORD = "hunter2-secret"


@dataclass(frozen=True)
class Workspace:
    root: Path
    url: str
    env: dict[str, str]

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env={**self.env, **extra},
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        process = self.start(*args, **extra)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def count(self, query: str) -> int:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(query)).scalar_one())
        finally:
            engine.dispose()

    def revisions(self) -> list[str]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                if not inspect(connection).has_table("alembic_version"):
                    return []
                rows = connection.execute(text("SELECT version_num FROM alembic_version"))
                return [str(r) for r in rows.scalars()]
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """An empty database, a flag file with a staging override, and settings naming them
    (the sql flag backend, so first-start seeding is exercised too)."""
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / "flags" / "feature_flags_staging.yaml").write_text(STAGING)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    settings = {
        "ROLLOUT_STATE_DIR": str(tmp_path / "state"),
        "ROLLOUT_FLAG_BACKEND": "sql",
        "ROLLOUT_FLAGS_FILE": str(tmp_path / "flags" / "feature_flags.yaml"),
        "ROLLOUT_DEFAULT_ROLE": "operator",
    }

    def made(url: str) -> Workspace:
        return Workspace(tmp_path, url, {**clean, **settings, "ROLLOUT_DATABASE_URL": url})

    if request.param == "sqlite":
        yield made(f"sqlite:///{tmp_path / 'metrics.db'}")
        return
    with fresh_postgres_database("rollout_safe_start") as url:
        yield made(url)


def test_processes_starting_at_once_on_an_empty_database_all_succeed(workspace):
    """Three write commands (each migrates and seeds at start) and `db upgrade`, started
    together: every one exits 0, one of them migrated, the flags were imported once."""
    processes = [
        workspace.start("rollback", flag, "--kill", "--reason", f"start {flag}")
        for flag in ("alpha", "beta", "gamma")
    ]
    processes.append(workspace.start("db", "upgrade"))
    finished = [(p.args, *p.communicate(timeout=180), p.returncode) for p in processes]

    for args, out, err, code in finished:
        assert code == 0, f"{args}: exit {code}\n{out}\n{err}"
        assert "Traceback" not in err and "UniqueViolation" not in err, err
    said = "\n".join(out + err for _, out, err, _ in finished)
    assert said.count(f"metrics database: no schema → {HEAD_REVISION}") == 1, said
    assert workspace.revisions() == [HEAD_REVISION]
    # seeded once: production and the staging override, 3 flags each, then 3 kills
    assert workspace.count("SELECT count(*) FROM flag_configs") == 2
    assert workspace.count("SELECT count(*) FROM flag_definitions") == 6
    assert (
        workspace.count(
            "SELECT count(*) FROM flag_definitions WHERE environment = 'production' AND version = 2"
        )
        == 3
    )
    assert workspace.count("SELECT count(*) FROM flag_definitions WHERE version = 1") == 3
    assert workspace.count("SELECT count(*) FROM audit_log") == 3


def test_a_process_waits_for_the_migration_lock_and_finds_the_work_done(workspace):
    """Deterministic, where the race above depends on timing: while this test holds the
    migration lock, `db upgrade` is seen waiting for it (PostgreSQL's pg_locks, or the
    kernel's /proc/locks for the SQLite lock file); the test migrates meanwhile, lets go,
    and the waiting process finds the schema at head and changes nothing."""
    from app.metrics_db.database import database_engine
    from app.metrics_db.revisions import _run, migration_lock

    engine = database_engine(workspace.url)
    try:
        with migration_lock(engine) as connection:
            waiting = workspace.start("db", "upgrade")
            _wait_until(lambda: _lock_waiters(engine) == 1, waiting)
            _run(connection, "upgrade", "head")
        out, err = waiting.communicate(timeout=120)
    finally:
        engine.dispose()
    assert waiting.returncode == 0, err
    assert out.strip() == f"metrics database: already at {HEAD_REVISION}"
    assert workspace.revisions() == [HEAD_REVISION]


def _lock_waiters(engine) -> int:
    """Processes waiting for the migration lock of `engine`'s database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar_one()
            )
    lock_file = Path(str(engine.url.database) + ".migrate.lock")
    inode = os.stat(lock_file).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "-> FLOCK" in line and f":{inode} " in line)


def _wait_until(condition, process: subprocess.Popen[str], attempts: int = 1200) -> None:
    """Poll `condition` every 0.1 s while `process` runs; fail if it ends first."""
    import time

    for _ in range(attempts):
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"ended before waiting for the lock: {process.communicate()}")
        time.sleep(0.1)
    process.kill()
    pytest.fail("never seen waiting for the migration lock")


def test_db_current_names_head_after_upgrade(workspace):
    before = workspace.run("db", "current")
    assert before.returncode == 0
    assert before.stdout.startswith("no schema")
    assert UPGRADE_COMMAND in before.stdout

    upgraded = workspace.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"metrics database: no schema → {HEAD_REVISION}"
    again = workspace.run("db", "upgrade")
    assert again.stdout.strip() == f"metrics database: already at {HEAD_REVISION}"

    current = workspace.run("db", "current")
    assert current.returncode == 0
    assert current.stdout.strip() == f"{HEAD_REVISION} (head)"
    assert workspace.revisions() == [HEAD_REVISION]


READERS = (["status"], ["audit"], ["phases"], ["requests"], ["plan", "show"], ["canary"])


def _in_process(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys, *args: str
) -> tuple[int, str]:
    """`main(args)` in this process (no interpreter start) with the workspace's settings."""
    from app.cli import main

    with monkeypatch.context() as patch:
        patch.chdir(workspace.root)
        for name in [n for n in os.environ if n.startswith("ROLLOUT_")]:
            patch.delenv(name)
        for name, value in workspace.env.items():
            if name.startswith("ROLLOUT_"):
                patch.setenv(name, value)
        code = main(list(args))
    return code, capsys.readouterr().err


def test_read_only_commands_never_migrate_an_empty_database(workspace, monkeypatch, capsys):
    for command in READERS:
        code, err = _in_process(workspace, monkeypatch, capsys, *command)
        assert code == 4, (command, err)
        assert "has no schema yet" in err
        assert f"run `{UPGRADE_COMMAND}`" in err
    assert workspace.revisions() == []
    refused = workspace.run("status")  # and as a process, as a person runs it
    assert refused.returncode == 4
    assert "has no schema yet" in refused.stderr and "Traceback" not in refused.stderr
    assert workspace.revisions() == []


def test_a_downgrade_is_refused_by_readers_and_not_silently_upgraded(
    workspace, monkeypatch, capsys
):
    assert workspace.run("db", "upgrade").returncode == 0
    previous = "0004"
    down = workspace.run("db", "downgrade", previous)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"metrics database: {HEAD_REVISION} → {previous}"
    assert workspace.revisions() == [previous]
    assert "rollout_plans" not in _tables(workspace.url)  # 0005's tables are gone

    for command in READERS:
        code, err = _in_process(workspace, monkeypatch, capsys, *command)
        assert code == 4, (command, err)
        assert f"is at revision {previous}" in err
        assert f"needs revision {HEAD_REVISION}" in err
        assert f"run `{UPGRADE_COMMAND}`" in err
    assert workspace.revisions() == [previous]

    # with auto-migration off, a command that writes refuses too, and writes nothing
    kept = workspace.run(
        "rollback", "alpha", "--kill", "--reason", "r", ROLLOUT_AUTO_MIGRATE="false"
    )
    assert kept.returncode == 4, kept.stderr
    assert f"is at revision {previous}" in kept.stderr
    assert workspace.revisions() == [previous]
    current = workspace.run("db", "current")
    assert current.stdout.startswith(f"{previous} (this release's head is {HEAD_REVISION}")

    # a write command with auto-migration on (the default) upgrades, and says so
    acted = workspace.run("rollback", "alpha", "--kill", "--reason", "r")
    assert acted.returncode == 0, acted.stderr
    assert f"metrics database: {previous} → {HEAD_REVISION}" in acted.stderr
    assert workspace.revisions() == [HEAD_REVISION]


def test_a_downgrade_target_that_cannot_be_reached_is_refused(workspace):
    assert workspace.run("db", "upgrade").returncode == 0
    unknown = workspace.run("db", "downgrade", "0042")
    assert unknown.returncode == 2
    assert "unknown revision '0042'" in unknown.stderr
    assert workspace.revisions() == [HEAD_REVISION]


def test_serve_without_auto_migration_refuses_an_unmigrated_database(workspace):
    refused = workspace.run("serve", "--port", "1", ROLLOUT_AUTO_MIGRATE="false")
    assert refused.returncode == 4
    assert "has no schema yet" in refused.stderr and UPGRADE_COMMAND in refused.stderr
    assert "serving on" not in refused.stdout
    assert workspace.revisions() == []


def test_the_database_url_is_read_from_its_file(workspace, tmp_path):
    secret = tmp_path / "database-url"
    secret.write_text(workspace.url + "\n")  # a mounted secret ends with a newline
    env = {k: v for k, v in workspace.env.items() if k != "ROLLOUT_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env={**env, "ROLLOUT_DATABASE_URL_FILE": str(secret)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert workspace.revisions() == [HEAD_REVISION]
    assert not (tmp_path / "state" / "metrics.db").exists()  # no SQLite fallback


def _run_with(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**clean, "ROLLOUT_STATE_DIR": str(cwd / "state"), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_secret_file_stops_the_command_naming_the_setting(tmp_path):
    done = _run_with({"ROLLOUT_DATABASE_URL_FILE": str(tmp_path / "nowhere")}, tmp_path, "status")
    assert done.returncode == 2
    assert "ROLLOUT_DATABASE_URL_FILE: no such file" in done.stderr
    assert not (tmp_path / "state").exists()  # never fell back to a fresh SQLite file


def test_a_secret_file_is_never_quoted(tmp_path):
    secret = tmp_path / "database-url"
    secret.write_text(f"nosuchdb://olga:{PASSWORD}@db/x\n")
    done = _run_with({"ROLLOUT_DATABASE_URL_FILE": str(secret)}, tmp_path, "db", "current")
    assert done.returncode == 2
    assert "ROLLOUT_DATABASE_URL" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_a_secret_set_both_ways_is_refused(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(PASSWORD)
    done = _run_with(
        {"ROLLOUT_UNLEASH_TOKEN": PASSWORD, "ROLLOUT_UNLEASH_TOKEN_FILE": str(secret)},
        tmp_path,
        "db",
        "current",
    )
    assert done.returncode == 2
    assert "ROLLOUT_UNLEASH_TOKEN: set both it and ROLLOUT_UNLEASH_TOKEN_FILE" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_an_empty_sql_backend_without_a_flag_file_starts_empty_and_says_so(workspace):
    env = {k: v for k, v in workspace.env.items() if k != "ROLLOUT_FLAGS_FILE"}
    started = subprocess.run(
        [sys.executable, "-m", "app.cli", "autopilot", "--once"],
        env=env,
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    assert "the sql flag backend holds no flags yet: set ROLLOUT_FLAGS_FILE" in started.stderr
    assert workspace.count("SELECT count(*) FROM flag_definitions") == 0
    assert workspace.count("SELECT count(*) FROM flag_configs") == 0


def test_a_named_flag_file_that_is_missing_stops_the_first_start(workspace):
    missing = workspace.root / "flags" / "missing.yaml"
    done = workspace.run("autopilot", "--once", ROLLOUT_FLAGS_FILE=str(missing))
    assert done.returncode == 1
    assert "flag configuration is invalid" in done.stderr
    assert str(missing) in done.stderr
    assert workspace.count("SELECT count(*) FROM flag_configs") == 0


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_serve_with_a_missing_cookie_secret_file_stops_before_starting(workspace):
    missing = workspace.root / "cookie-secret"
    done = workspace.run("serve", "--port", "1", STREAMLIT_SERVER_COOKIE_SECRET_FILE=str(missing))
    assert done.returncode == 2
    assert f"STREAMLIT_SERVER_COOKIE_SECRET_FILE: no such file: {missing}" in done.stderr
    assert "serving on" not in done.stdout
    assert workspace.revisions() == []  # stopped before migrating anything


def test_the_pages_say_what_to_run_when_they_may_not_migrate(
    tmp_path, monkeypatch, no_rollout_environment
):
    """`serve` with ROLLOUT_AUTO_MIGRATE=false on a database one revision behind: every
    page says so and what to run, and the database stays where it was."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.metrics_db.database import database_engine
    from app.metrics_db.revisions import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    engine = database_engine(url)
    upgrade(engine)
    downgrade(engine, "0004")
    engine.dispose()
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_AUTO_MIGRATE", "false")
    st.cache_resource.clear()
    entry = Path(__file__).resolve().parents[2] / "app" / "main.py"
    try:
        at = AppTest.from_file(str(entry), default_timeout=30).run()
    finally:
        st.cache_resource.clear()
    assert not at.exception
    assert at.title[0].value == "🚦 Rollout Dashboard cannot start: the database schema"
    shown = at.error[0].value
    assert "is at revision 0004" in shown and f"run `{UPGRADE_COMMAND}`" in shown
    assert Workspace(tmp_path, url, {}).revisions() == ["0004"]


@pytest.mark.postgres
def test_a_seed_racing_another_seeds_nothing_and_raises_nothing(tmp_path):
    """Where the first start died with UniqueViolation on flag_configs_pkey: a seed that
    finds another process's uncommitted import of the same environment waits for it,
    then writes nothing and returns False."""
    import threading
    from datetime import UTC, datetime

    from app.flags.loader import load_config
    from app.flags.sql_backend import SqlFlagBackend
    from app.metrics_db.database import open_database
    from app.metrics_db.schema import StoredConfig

    with fresh_postgres_database("rollout_seed_race") as url:
        engine = open_database(url)
        other = open_database(url)
        flags = tmp_path / "feature_flags.yaml"
        flags.write_text(FLAGS)
        config = load_config(flags, "production")
        outcome: list[object] = []
        try:
            with other.begin() as first:  # the other process: imported, not yet committed
                first.execute(
                    StoredConfig.__table__.insert().values(
                        environment="production",
                        document={"version": "9"},
                        updated_at=datetime.now(UTC),
                    )
                )
                racing = threading.Thread(
                    target=lambda: outcome.append(
                        SqlFlagBackend(engine).seed({"production": config})
                    )
                )
                racing.start()
                for _ in range(1200):
                    if _transaction_waiters(engine) >= 1 or not racing.is_alive():
                        break
                    racing.join(0.1)
                assert racing.is_alive(), f"did not wait for the other import: {outcome}"
            racing.join(60)
            assert outcome == [False]
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT document FROM flag_configs")).all()
                flags_stored = connection.execute(
                    text("SELECT count(*) FROM flag_definitions")
                ).scalar_one()
            assert [r[0] for r in rows] == [{"version": "9"}]  # the other's, alone
            assert flags_stored == 0
        finally:
            engine.dispose()
            other.dispose()


def _transaction_waiters(engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'transactionid' AND NOT l.granted "
                    "AND a.datname = current_database()"
                )
            ).scalar_one()
        )
