"""Opening the metrics database, migrating it, and writing roll-ups."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, update
from sqlalchemy.engine import make_url

from app.metrics_db.records import EvaluationRollup
from app.metrics_db.revisions import (
    HEAD_REVISION,
    MIGRATIONS,
    Migration,
    applied_revisions,
    require_head,
    upgrade,
)
from app.metrics_db.schema import InstanceReport, RollupRow

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS",
    "applied_revisions",
    "database_engine",
    "insert_rollups",
    "migrate",
    "open_database",
    "report_instance",
    "rollup_values",
]


def open_database(
    url: str,
    *,
    migrate_schema: bool = True,
    on_migrated: Callable[[Migration], None] | None = None,
) -> Engine:
    """An engine on `url`, migrated to the newest schema (under the migration lock;
    `on_migrated` hears of a move); with `migrate_schema=False` the schema is only
    checked: SchemaNotCurrent unless it is at this release's revision, so a process that
    may not migrate never works on another schema. Lets SQLAlchemy's errors through."""
    engine = database_engine(url)
    try:
        if migrate_schema:
            moved = upgrade(engine)
            if moved.changed and on_migrated is not None:
                on_migrated(moved)
        else:
            require_head(engine)
    except BaseException:
        engine.dispose()
        raise
    from app.metrics_db.availability import watch_availability

    watch_availability(engine)  # an outage from now on is said in the log
    return engine


def database_engine(url: str) -> Engine:
    """An engine on `url`, schema untouched. SQLite files get their folder created and WAL
    mode, so the simulator can write while the dashboard reads."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> Migration:
    """`upgrade(engine)`: apply every migration not yet applied, under the migration lock."""
    return upgrade(engine)


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
