"""Opening the metrics database, migrating it, and writing roll-ups."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, text, update
from sqlalchemy.engine import make_url

from app.metrics_db.records import EvaluationRollup
from app.metrics_db.schema import InstanceReport, RollupRow

__all__ = [
    "HEAD_REVISION",
    "applied_revisions",
    "insert_rollups",
    "migrate",
    "open_database",
    "report_instance",
    "rollup_values",
]

MIGRATIONS = Path(__file__).parent / "migrations"

#: the newest revision under migrations/versions (a test holds it equal to Alembic's head):
#: a database already there is opened without importing Alembic, which costs ~1 s
HEAD_REVISION = "0006"


def open_database(url: str, *, migrate_schema: bool = True) -> Engine:
    """An engine on `url`, migrated to the newest schema unless told not to.

    SQLite files get their folder created and WAL mode, so the simulator can write
    while the dashboard reads. Once open, the engine logs when the database stops
    answering and when it is back (`availability`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate_schema:
        migrate(engine)
    from app.metrics_db.availability import watch_availability

    watch_availability(engine)  # an outage from now on is said in the log
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (idempotent); Alembic is imported
    only when the database is not at `HEAD_REVISION`. Lets SQLAlchemy's errors through."""
    with engine.connect() as connection:
        if applied_revisions(connection) == {HEAD_REVISION}:
            return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def applied_revisions(connection: Connection) -> set[str]:
    """The revisions recorded in `alembic_version`; empty for a database never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return {str(version) for version in rows.scalars()}


def insert_rollups(engine: Engine, rollups: Iterable[EvaluationRollup]) -> int:
    """Append roll-ups in one transaction; returns how many were written."""
    rows = rollup_values(rollups)
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(RollupRow), rows)
    return len(rows)


def rollup_values(rollups: Iterable[EvaluationRollup]) -> list[dict[str, Any]]:
    """The `evaluation_rollups` column values of each roll-up, for one bulk insert."""
    return [
        {
            "interval_start": r.interval_start,
            "interval_seconds": r.interval_seconds,
            "interval_end": r.interval_end,
            "environment": r.environment,
            "flag": r.flag,
            "variant": r.variant,
            "reason": r.reason,
            "evaluations": r.evaluations,
            "errors": r.errors,
            "latency_sum": r.latency_sum,
            "latency_count": r.latency_count,
            "latency_buckets": list(r.latency_buckets),
            "origin": r.origin,
        }
        for r in rollups
    ]


def report_instance(
    engine: Engine, environment: str, instance: str, config_version: str, at: datetime
) -> None:
    """Record that `instance` runs `config_version` (update, or insert the first time)."""
    with engine.begin() as connection:
        updated = connection.execute(
            update(InstanceReport)
            .where(InstanceReport.environment == environment, InstanceReport.instance == instance)
            .values(config_version=config_version, reported_at=at)
        )
        if updated.rowcount == 0:
            connection.execute(
                insert(InstanceReport).values(
                    environment=environment,
                    instance=instance,
                    config_version=config_version,
                    reported_at=at,
                )
            )
