"""The base every question set over the database roll-ups shares: one way to run a
statement, count it, and turn a database failure into `SourceUnavailable`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Executable, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute

from app.metrics_db.schema import RequestRollup, RollupRow
from queries.series_math import newest_time
from queries.source import QueryLog, SourceUnavailable

__all__ = ["SqlQuestions", "held_by"]


class SqlQuestions:
    """Runs the statements of one question set (`SqlMetrics`, `SqlFlagSeries`,
    `SqlCanaryQueries`) against `engine`, with the histogram bounds it was written with."""

    name = "sql"

    def __init__(self, engine: Engine, buckets: tuple[float, ...]) -> None:
        self.engine = engine
        self.buckets = buckets
        #: every SQL statement run, in order (a "queries per page load" figure reads it)
        self.issued: QueryLog = QueryLog()

    def fetch(self, statement: Executable) -> Sequence[Any]:
        """Every row of `statement`; SourceUnavailable when the database cannot answer."""
        self.issued.append(str(statement))
        try:
            with self.engine.connect() as connection:
                return connection.execute(statement).all()
        except SQLAlchemyError as error:
            raise SourceUnavailable("metrics database", type(error).__name__) from error

    def newest_end(
        self, table: type[RollupRow] | type[RequestRollup], environment: str, at: datetime
    ) -> datetime | None:
        """The newest `interval_end` of `environment`'s rows in `table` at or before `at`
        (UTC); None when there is none."""
        statement = select(func.max(table.interval_end)).where(
            table.environment == environment, table.interval_end <= at
        )
        rows = self.fetch(statement)
        return newest_time(rows[0][0] if rows else None)


def held_by(count: InstrumentedAttribute[int], window: timedelta) -> ColumnElement[Any]:
    """The part of each roll-up's `count` that a `window` ending at the roll-up's end
    holds: all of it for a roll-up no longer than the window, count x window / length
    for a longer one (an hour copied from Unleash, read through a 5-minute window), so
    a rate never takes an hour's evaluations for a few minutes'."""
    seconds = window.total_seconds()
    share = case(
        (RollupRow.interval_seconds > seconds, seconds / RollupRow.interval_seconds),
        else_=1.0,
    )
    return count * share
