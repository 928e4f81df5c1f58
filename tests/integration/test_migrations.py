"""Opening the metrics database migrates it, and imports Alembic only when it must.

Run on SQLite and on the real PostgreSQL: a fresh database, one left at the first
revision, and one already at head (opened without Alembic, checked in a subprocess).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from app.metrics_db.database import HEAD_REVISION, MIGRATIONS, applied_revisions, open_database
from tests.conftest import fresh_postgres_database

#: tables the later migrations add (the first one adds the roll-ups and the audit log)
ADDED_BY_HEAD = {
    "audit_outcomes",
    "flag_configs",
    "flag_definitions",
    "instance_reports",
    "change_requests",
    "rollout_plans",
    "autopilot_events",
    "autopilot_lease",
    "webhook_deliveries",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database per test (the session's shared PostgreSQL one is migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metrics.db'}"
        return
    with fresh_postgres_database("rollout_migrations") as url:
        yield url


def test_head_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_a_fresh_database_is_migrated_to_head(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.connect() as connection:
        assert applied_revisions(connection) == {HEAD_REVISION}
        assert set(inspect(connection).get_table_names()) >= ADDED_BY_HEAD
    engine.dispose()


def test_a_database_at_an_older_revision_is_upgraded(database_url: str) -> None:
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with engine.connect() as connection:
        assert applied_revisions(connection) == {"0001"}
        assert not ADDED_BY_HEAD & set(inspect(connection).get_table_names())
    engine.dispose()

    upgraded = open_database(database_url)
    with upgraded.connect() as connection:
        assert applied_revisions(connection) == {HEAD_REVISION}
        assert set(inspect(connection).get_table_names()) >= ADDED_BY_HEAD
    upgraded.dispose()


def test_a_database_at_head_is_opened_without_alembic(database_url: str) -> None:
    open_database(database_url).dispose()
    probe = (
        "import sys\n"
        "from app.metrics_db.database import open_database\n"
        f"engine = open_database({database_url!r})\n"
        "with engine.connect() as c:\n"
        "    print(c.execute(__import__('sqlalchemy').text('SELECT count(*) FROM audit_log'))"
        ".scalar())\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["0", "False"]


def test_a_row_not_at_head_still_goes_through_alembic(database_url: str) -> None:
    """A revision this code does not know (a newer release migrated the database) is not
    taken for head: Alembic is asked, and refuses it as before."""
    open_database(database_url).dispose()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(Exception, match="9999"):
        open_database(database_url)
    engine.dispose()


def test_0004_keeps_the_roll_ups_and_allows_one_copied_row_per_key(database_url: str) -> None:
    """Roll-ups written before 0004 keep their numbers with an empty origin; written
    here, the same key twice is fine (two writers), copied twice it is refused."""
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    row = (
        "INSERT INTO evaluation_rollups (interval_start, interval_seconds, interval_end, "
        "environment, flag, variant, reason, evaluations, errors, latency_sum, latency_count, "
        "latency_buckets{origin_column}) VALUES ('2026-12-02 17:00:00', 3600, "
        "'2026-12-02 18:00:00', 'production', 'f', 'on', 'split', 7, 0, 0, 0, '[]'{origin})"
    )
    with engine.begin() as connection:
        connection.execute(text(row.format(origin_column="", origin="")))
    engine.dispose()

    upgraded = open_database(database_url)
    with upgraded.begin() as connection:
        connection.execute(text(row.format(origin_column="", origin="")))
        connection.execute(text(row.format(origin_column=", origin", origin=", 'unleash:a'")))
        connection.execute(text(row.format(origin_column=", origin", origin=", 'unleash:b'")))
    with upgraded.connect() as connection:
        origins = connection.execute(
            text("SELECT origin, evaluations FROM evaluation_rollups ORDER BY id")
        ).all()
    assert [tuple(r) for r in origins] == [("", 7), ("", 7), ("unleash:a", 7), ("unleash:b", 7)]
    with pytest.raises(IntegrityError), upgraded.begin() as connection:
        connection.execute(text(row.format(origin_column=", origin", origin=", 'unleash:a'")))
    upgraded.dispose()
