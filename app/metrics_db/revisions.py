"""The metrics database's schema revision, and moving it with Alembic under a lock that
every process migrating the same database shares: a PostgreSQL advisory lock, or an
exclusive `flock` on a file beside a SQLite database. Any number of processes starting at
once then migrate it once; the others find it done.

Alembic is imported only to move the schema: a database already at `HEAD_REVISION` is
checked with one query.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from app.errors import RolloutError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS",
    "Migration",
    "MigrationRefused",
    "SchemaNotCurrent",
    "applied_revisions",
    "current_revision",
    "downgrade",
    "migration_lock",
    "require_head",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"

#: the newest revision under migrations/versions (a test holds it equal to Alembic's head):
#: a database already there is opened without importing Alembic, which costs ~1 s
HEAD_REVISION = "0007"

#: the PostgreSQL advisory lock every migration of a database holds (advisory locks are
#: per database, so one constant key serves every database on a server)
ADVISORY_LOCK_KEY = 0x524F4C4C_4F555401  # "ROLLOUT" + 1

#: what a person runs to bring the database to this release's schema
UPGRADE_COMMAND = "rollout-dashboard db upgrade"


class SchemaNotCurrent(RolloutError, RuntimeError):
    """The database is not at this release's revision, and this process may not move it
    (a read-only command, or `ROLLOUT_AUTO_MIGRATE=false`); the message says what to run."""

    def __init__(self, current: str | None, *, known: bool = True) -> None:
        self.current = current
        if current is None:
            where = "has no schema yet (never migrated)"
        elif not known:
            where = (
                f"is at revision {current}, which this release does not know (a newer release "
                "migrated it): run that release, or downgrade the database with it"
            )
            super().__init__(f"the metrics database {where}")
            return
        else:
            where = f"is at revision {current}"
        super().__init__(
            f"the metrics database {where}; this release needs revision {HEAD_REVISION}: "
            f"run `{UPGRADE_COMMAND}`"
        )


class MigrationRefused(RolloutError, ValueError):
    """A revision that cannot be reached from where the database is (unknown, or not
    below the current one for a downgrade); nothing was changed."""


@dataclass(frozen=True)
class Migration:
    """Where the schema was before a move and where it is after (None: no schema)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        """One line for a person: `metrics database: 0004 → 0005`."""
        before, after = self.before or "no schema", self.after or "no schema"
        if not self.changed:
            return f"metrics database: already at {after}"
        return f"metrics database: {before} → {after}"


def applied_revisions(connection: Connection) -> set[str]:
    """The revisions recorded in `alembic_version`; empty for a database never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return {str(version) for version in rows.scalars()}


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None: never migrated). Lets SQLAlchemy's errors through."""
    with engine.connect() as connection:
        return _single(applied_revisions(connection))


def require_head(engine: Engine) -> None:
    """Nothing when the database is at `HEAD_REVISION`; SchemaNotCurrent otherwise."""
    current = current_revision(engine)
    if current == HEAD_REVISION:
        return
    raise SchemaNotCurrent(current, known=current is None or current in _known_revisions())


def upgrade(engine: Engine) -> Migration:
    """Bring the database to `HEAD_REVISION` under the migration lock (idempotent: a
    process that waited finds it done). SchemaNotCurrent for a revision this release does
    not know; lets SQLAlchemy's errors through."""
    before = current_revision(engine)
    if before == HEAD_REVISION:
        return Migration(before, before)
    with migration_lock(engine) as connection:
        before = _single(applied_revisions(connection))
        connection.commit()
        if before == HEAD_REVISION:
            return Migration(before, before)
        if before is not None and before not in _known_revisions():
            raise SchemaNotCurrent(before, known=False)
        _run(connection, "upgrade", "head")
        return Migration(before, _single(applied_revisions(connection)))


def downgrade(engine: Engine, revision: str) -> Migration:
    """Move the database down to `revision` (`base`: no schema) under the migration lock.
    MigrationRefused for a revision that is unknown or not below the current one."""
    if revision != "base" and revision not in _known_revisions():
        raise MigrationRefused(
            f"unknown revision {revision!r}: this release knows "
            f"{', '.join(_known_revisions())} and base"
        )
    with migration_lock(engine) as connection:
        before = _single(applied_revisions(connection))
        connection.commit()
        if before is None:
            raise MigrationRefused("the metrics database has no schema: nothing to downgrade")
        if before not in _known_revisions():
            raise SchemaNotCurrent(before, known=False)
        if revision == before:
            return Migration(before, before)
        order = _known_revisions()
        if revision != "base" and order.index(revision) > order.index(before):
            raise MigrationRefused(
                f"revision {revision} is above the database's {before}: use `{UPGRADE_COMMAND}`"
            )
        _run(connection, "downgrade", revision)
        return Migration(before, _single(applied_revisions(connection)))


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection to migrate on, held under the database's migration lock until the
    block ends: a PostgreSQL session advisory lock, a `flock` on `<file>.migrate.lock`
    beside a SQLite file, nothing more for an in-memory database. Waits for the lock."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                _unlock(connection)
        return
    lock_file = _sqlite_lock_file(engine)
    with (
        _file_lock(lock_file) if lock_file else contextlib.nullcontext(),
        engine.connect() as connection,
    ):
        yield connection


def _unlock(connection: Connection) -> None:
    """Release the advisory lock; a connection that cannot is closed, which releases it."""
    try:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
        connection.commit()
    except SQLAlchemyError:
        connection.invalidate()


def _sqlite_lock_file(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return None
    path = Path(str(database))
    return path.with_name(f"{path.name}.migrate.lock")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` for the block (released when the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _run(connection: Connection, verb: str, revision: str) -> None:
    """Alembic's `upgrade` / `downgrade` to `revision`, in one transaction on `connection`."""
    from alembic import command

    config = _alembic_config()
    with connection.begin():
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _known_revisions() -> list[str]:
    """This release's revisions, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    return [script.revision for script in scripts.walk_revisions()][::-1]


def _single(revisions: set[str]) -> str | None:
    """The one revision of a linear history (several would be branches: shown together)."""
    return ",".join(sorted(revisions)) or None
