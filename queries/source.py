"""The questions every metrics source answers, and how it says it cannot.

`queries.prometheus.PrometheusMetrics` and `queries.sql.SqlMetrics` implement
`MetricsSource`; the overview and the CLI take either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from app.errors import RolloutError
from queries.names import ErrorsIn

if TYPE_CHECKING:  # the protocol only names frames: importing it must not cost pandas
    import pandas as pd

__all__ = [
    "MetricsSource",
    "QueryLog",
    "SourceUnavailable",
    "counting_queries",
    "first_answer",
    "no_series_notice",
]

S = TypeVar("S")
T = TypeVar("T")


class SourceUnavailable(RolloutError, RuntimeError):
    """The source could not answer (down, slow past its timeout, or an error reply).

    The message is safe to show a user: it never carries credentials or a traceback.
    """

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source} unavailable: {detail}")
        self.source = source
        self.detail = detail


class _Tally:
    """How many queries were sent within one `counting_queries` block."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


#: the tallies of the `counting_queries` blocks the current code runs in (innermost last)
_TALLIES: ContextVar[tuple[_Tally, ...]] = ContextVar("query_tallies", default=())


class QueryLog(list[str]):
    """Every query text a source sent, in order; a source shared by the threads of many
    viewers appends to it from each of them. Each append also counts in the
    `counting_queries` blocks of the caller (threads it starts inherit them when they run
    in a copy of its context), so one caller's count never includes another's."""

    def append(self, query: str) -> None:
        super().append(query)  # atomic under the GIL
        for tally in _TALLIES.get():
            tally.add()


@contextmanager
def counting_queries() -> Iterator[_Tally]:
    """Count the queries this context (and work run in copies of it) sends to any
    source whose `issued` is a `QueryLog`; read `.count` after the block."""
    tally = _Tally()
    token = _TALLIES.set((*_TALLIES.get(), tally))
    try:
        yield tally
    finally:
        _TALLIES.reset(token)


class MetricsSource(Protocol):
    """One implementation per backend; each method is one query covering every flag."""

    name: str

    @property
    def issued(self) -> list[str]:
        """Every query text sent, in order (a "queries per page load" figure reads it)."""
        ...

    @property
    def errors_in(self) -> ErrorsIn:
        """Where the emitter behind this source counts a failed evaluation: what
        `app.analysis.failures.flag_errors` reads."""
        ...

    def evaluation_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        """Evaluations per second by flag and variant (`frames.EVALUATION_RATE_COLUMNS`)."""
        ...

    def error_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        """Failed evaluations per second by flag (`frames.ERROR_RATE_COLUMNS`)."""
        ...

    def error_counts(self, environment: str, window: timedelta, at: datetime) -> pd.DataFrame:
        """Failed evaluations the error counter counted by flag over the window, as counts
        (`frames.ERROR_COUNT_COLUMNS`): `error_rates`' question in the units of
        `variant_counts`. Empty when the emitter has no error counter."""
        ...

    def latency_quantiles(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        quantiles: tuple[float, ...] = (0.5, 0.99),
        flag: str | None = None,
    ) -> pd.DataFrame:
        """Evaluation latency by flag and quantile (`frames.LATENCY_COLUMNS`)."""
        ...

    def evaluation_sparklines(
        self, environment: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """Evaluations per second by flag over time (`frames.SPARKLINE_COLUMNS`)."""
        ...

    def newest_sample_time(self, environment: str, at: datetime) -> datetime | None:
        """Time of the newest evaluation sample at or before `at`; None when there is none."""
        ...

    def flag_counts(
        self, environment: str, flag: str, window: timedelta, at: datetime
    ) -> pd.DataFrame:
        """Evaluations of one flag by variant and reason over the window, as counts
        (`frames.FLAG_COUNT_COLUMNS`); failed ones carry reason `error`."""
        ...

    def variant_counts(self, environment: str, window: timedelta, at: datetime) -> pd.DataFrame:
        """Every flag's evaluations by variant and reason over the window, as counts
        (`frames.VARIANT_COUNT_COLUMNS`): one question for all flags."""
        ...

    def slot_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """Every flag's evaluations by variant and reason in each slot ending in
        (start, end], as counts (`frames.SLOT_COUNT_COLUMNS`): one question for all
        flags. ValueError for a span off the slot grid (`frames.check_slot_span`)."""
        ...

    def slot_error_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """Every flag's failures the error counter counted in each slot ending in
        (start, end] (`frames.SLOT_ERROR_COLUMNS`): `slot_counts`' grid, `error_counts`'
        question. Empty when the emitter has no error counter."""
        ...

    def guardrail_counts(
        self,
        query: str,
        labels: tuple[str, str],
        start: datetime,
        end: datetime,
        slot: timedelta,
    ) -> pd.DataFrame:
        """A guardrail's query (substituted: `queries.guardrails.guardrail_query`) at
        every slot end in (start, end], by its flag and variant `labels`
        (`guardrails.GUARDRAIL_COLUMNS`). SourceUnavailable where the source holds no
        service metrics (the database roll-ups)."""
        ...

    def instance_versions(self, environment: str, at: datetime) -> pd.DataFrame:
        """The config version each live instance reports (`frames.INSTANCE_VERSION_COLUMNS`)."""
        ...


def no_series_notice(source: object, environment: str) -> str | None:
    """What a page says when `source` answered but holds no series for `environment`:
    where it looked (a label, a join), from a source that can say (Prometheus); None
    from one that cannot."""
    hint = getattr(source, "no_series_hint", None)
    return str(hint(environment)) if callable(hint) else None


def first_answer(
    sources: Sequence[S], ask: Callable[[S], T], notices: list[str], then: str
) -> tuple[S, T] | None:
    """The first source in `sources` that answers `ask`, with its answer; every source
    that raised SourceUnavailable is added to `notices` as "<error> — <then>". None
    when no source answered."""
    for source in sources:
        try:
            return source, ask(source)
        except SourceUnavailable as error:
            notices.append(f"{error} — {then}")
    return None
