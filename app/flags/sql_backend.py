"""The `sql` flag backend: the same model stored in the metrics database (docs/design.md §2).

Each flag of an environment is one `flag_definitions` row (its JSON definition and a
version counter that rises by one per change); the rest of the config (version,
schema_version, global, phases) is one `flag_configs` document. A change is a
conditional UPDATE (`... WHERE version = :expected`), atomic under PostgreSQL's READ
COMMITTED; on SQLite the write transaction starts with `BEGIN IMMEDIATE`, so writers
queue on the database lock instead of failing on a stale snapshot.

An environment with no rows loads as an empty config of version "0".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from app.flags.backend import FlagBackend, FlagChange, FlagSnapshot, UnknownFlag, VersionConflict
from app.flags.loader import ConfigInvalid, ConfigIssue
from app.flags.model import FlagConfig, FlagDefinition, FlagState
from app.metrics_db.schema import StoredConfig, StoredFlag
from queries.source import SourceUnavailable

__all__ = ["SqlFlagBackend"]

_SOURCE = "metrics database"


class _Stale(Exception):
    """Internal: raised inside the transaction so the conflict snapshot is read after
    the rollback."""

    def __init__(self, flags: Sequence[str]) -> None:
        super().__init__(", ".join(flags))
        self.flags = list(dict.fromkeys(flags))


class SqlFlagBackend(FlagBackend):
    """Flags in the metrics database behind `engine` (SQLite or PostgreSQL).

    Every method raises SourceUnavailable when the database cannot be reached.
    """

    name = "sql"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def environments(self) -> list[str]:
        """Environments with a stored config or flags, sorted."""
        query = union(select(StoredConfig.environment), select(StoredFlag.environment))
        with self._reading() as connection:
            return sorted(str(name) for name in connection.execute(query).scalars())

    def load(self, environment: str) -> FlagSnapshot:
        """The environment's config and each flag's version counter; ConfigInvalid if
        the stored rows do not validate."""
        with self._reading() as connection:
            return _read_snapshot(connection, environment)

    def revision(self, environment: str) -> str:
        """One query's worth of the environment's rows (how many flags, the sum and
        newest of their versions and write times, the config document's write time):
        every committed `apply` raises a version, every import rewrites the document."""
        flags = select(
            func.count(),
            func.coalesce(func.sum(StoredFlag.version), 0),
            func.max(StoredFlag.id),
            func.max(StoredFlag.updated_at),
        ).where(StoredFlag.environment == environment)
        document = (
            select(StoredConfig.updated_at)
            .where(StoredConfig.environment == environment)
            .scalar_subquery()
        )
        with self._reading() as connection:
            row = connection.execute(flags.add_columns(document)).one()
        return "/".join("" if value is None else str(value) for value in row)

    def import_config(self, environment: str, config: FlagConfig, *, replace: bool = False) -> None:
        """Store `config` as `environment` (e.g. a YAML config moving to SQL).

        Refuses (ValueError) an environment that already has rows unless `replace`;
        replaced flags keep counting their versions, so no stale version matches again.
        """
        now = datetime.now(UTC)
        with self._writing() as connection:
            versions = {
                row.flag: row.version
                for row in connection.execute(
                    select(StoredFlag.flag, StoredFlag.version).where(
                        StoredFlag.environment == environment
                    )
                )
            }
            stored = connection.execute(
                select(StoredConfig.environment).where(StoredConfig.environment == environment)
            ).first()
            if (versions or stored is not None) and not replace:
                raise ValueError(
                    f"environment {environment!r} already holds flags; pass replace=True"
                )
            connection.execute(delete(StoredFlag).where(StoredFlag.environment == environment))
            connection.execute(delete(StoredConfig).where(StoredConfig.environment == environment))
            _insert_config(connection, environment, config, versions, now)

    def seed(self, configs: Mapping[str, FlagConfig]) -> bool:
        """Store every environment of `configs` in one transaction if the database holds
        no flags at all (a first start); False, writing nothing, when it holds some, also
        when another process seeded it meanwhile (safe for processes starting at once)."""
        now = datetime.now(UTC)
        try:
            with self._writing() as connection:
                held = union(select(StoredConfig.environment), select(StoredFlag.environment))
                if connection.execute(held.limit(1)).first() is not None:
                    return False
                for environment, config in configs.items():
                    _insert_config(connection, environment, config, {}, now)
        except IntegrityError:  # a process starting with this one seeded first
            return False
        return True

    def apply(
        self,
        environment: str,
        changes: Sequence[FlagChange],
        expected_versions: Mapping[str, str],
    ) -> FlagSnapshot:
        """Apply every change in one transaction, or none.

        Raises UnknownFlag, VersionConflict (a changed flag's version differs from
        `expected_versions`, or is missing from it) or ConfigInvalid; the transaction
        is rolled back then. Returns the snapshot after the commit.
        """
        by_flag = {change.flag: change for change in changes}  # the last change wins
        if not by_flag:
            return self.load(environment)
        now = datetime.now(UTC)
        try:
            with self._writing() as connection:
                current = {
                    row.flag: row
                    for row in connection.execute(
                        select(StoredFlag.flag, StoredFlag.definition, StoredFlag.version).where(
                            StoredFlag.environment == environment,
                            StoredFlag.flag.in_(list(by_flag)),
                        )
                    )
                }
                missing = [flag for flag in by_flag if flag not in current]
                if missing:
                    raise UnknownFlag(missing[0])
                stale = [
                    change.flag
                    for change in changes
                    if expected_versions.get(change.flag) != str(current[change.flag].version)
                ]
                if stale:
                    raise _Stale(stale)
                # Sorted, so that two transactions on PostgreSQL lock rows in one order.
                rows = [
                    {
                        "key": key,
                        "expected": current[key].version,
                        "definition": _changed(
                            environment, key, current[key].definition, by_flag[key]
                        ),
                    }
                    for key in sorted(by_flag)
                ]
                _update_versions(connection, environment, rows, now)
                return _read_snapshot(connection, environment)  # ConfigInvalid rolls back
        except _Stale as stale:
            raise VersionConflict(stale.flags, self.load(environment)) from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as error:
            raise _unavailable(error) from error

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One write transaction; rolled back if the block raises."""
        try:
            if self.engine.dialect.name != "sqlite":
                with self.engine.begin() as connection:
                    yield connection
                return
            # pysqlite would begin lazily (DEFERRED); a WAL reader that then writes fails
            # at once with SQLITE_BUSY. Drive the transaction ourselves instead.
            with self.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.exec_driver_sql("ROLLBACK")
                    raise
                connection.exec_driver_sql("COMMIT")
        except OperationalError as error:
            raise _unavailable(error) from error


def _insert_config(
    connection: Connection,
    environment: str,
    config: FlagConfig,
    versions: Mapping[str, int],
    now: datetime,
) -> None:
    """Insert `environment`'s config document and one row per flag, each flag's version
    counting on from `versions` (0 for a new one)."""
    document = config.model_dump(mode="json", by_alias=True, exclude={"flags", "environment"})
    connection.execute(
        insert(StoredConfig).values(environment=environment, document=document, updated_at=now)
    )
    rows = [
        {
            "environment": environment,
            "flag": key,
            "definition": _definition_json(flag),
            "version": versions.get(key, 0) + 1,
            "updated_at": now,
        }
        for key, flag in config.flags.items()
    ]
    if rows:
        connection.execute(insert(StoredFlag), rows)


def _update_versions(
    connection: Connection, environment: str, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Write each row's `definition` where its flag is still at version `expected`, one
    statement for all (an emergency rollback changes hundreds); _Stale, naming every flag
    of the statement, if any row moved since it was read."""
    statement = (
        update(StoredFlag)
        .where(
            StoredFlag.environment == environment,
            StoredFlag.flag == bindparam("key"),
            StoredFlag.version == bindparam("expected"),
        )
        .values(definition=bindparam("definition"), version=StoredFlag.version + 1, updated_at=now)
    )
    if len(rows) == 1 or not connection.dialect.supports_sane_multi_rowcount:
        for row in rows:
            if connection.execute(statement, row).rowcount != 1:
                raise _Stale([row["key"]])
    elif connection.execute(statement, rows).rowcount != len(rows):
        raise _Stale([row["key"] for row in rows])


def _unavailable(error: OperationalError) -> SourceUnavailable:
    # The driver's message names host and database but never a password.
    detail = str(error.orig).strip().splitlines()
    return SourceUnavailable(_SOURCE, detail[0] if detail else type(error.orig).__name__)


def _definition_json(flag: FlagDefinition) -> dict[str, Any]:
    return flag.model_dump(mode="json", by_alias=True, exclude={"key"})


def _changed(
    environment: str, key: str, definition: dict[str, Any], change: FlagChange
) -> dict[str, Any]:
    """`definition` with the change's state and percentage; ConfigInvalid if the flag
    would not validate (checked before any JSON reaches the database)."""
    rollout = dict(definition.get("rollout") or {})
    rollout["percentage"] = float(change.percentage)
    new = {**definition, "state": FlagState(change.state).value, "rollout": rollout}
    try:
        FlagDefinition.model_validate({**new, "key": key})
    except ValidationError as error:
        raise _invalid(environment, error, flag=key) from None
    return new


def _read_snapshot(connection: Connection, environment: str) -> FlagSnapshot:
    document = connection.execute(
        select(StoredConfig.document).where(StoredConfig.environment == environment)
    ).scalar_one_or_none()
    rows = connection.execute(
        select(StoredFlag.flag, StoredFlag.definition, StoredFlag.version)
        .where(StoredFlag.environment == environment)
        .order_by(StoredFlag.id)  # import order, i.e. the YAML's order
    ).all()
    data = {
        **(document or {"version": "0"}),
        "environment": environment,
        "flags": {row.flag: row.definition for row in rows},
    }
    try:
        config = FlagConfig.model_validate(data)
    except ValidationError as error:
        raise _invalid(environment, error) from None
    versions = {row.flag: str(row.version) for row in rows}
    return FlagSnapshot(environment=environment, config=config, versions=versions)


def _invalid(environment: str, error: ValidationError, flag: str | None = None) -> ConfigInvalid:
    where = Path(f"sql/{environment}")
    issues = []
    for detail in error.errors(include_url=False):
        loc = tuple(str(part) for part in detail["loc"])
        issue_flag = flag
        if issue_flag is None and len(loc) >= 2 and loc[0] == "flags":
            issue_flag, loc = loc[1], loc[2:]
        message = str(detail["msg"]).removeprefix("Value error, ")
        if loc:
            message = f"{'.'.join(loc)}: {message}"
        issues.append(ConfigIssue(where, None, issue_flag, message))
    return ConfigInvalid(issues)
