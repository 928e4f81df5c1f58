"""Saying in the log when the metrics database stops answering and when it is back, so
that an outage is visible in a process's output (`serve` used to log nothing while the
pages quietly showed what they had).

`watch_availability(engine)` hooks SQLAlchemy's events: the first failed connection or
statement logs an error, a still-failing database a warning every `every` seconds, and
the first connection that succeeds after it a warning saying how long it lasted. Only
the error's class is logged: a driver's message can quote the URL.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = ["Availability", "probe_forever", "watch_availability"]

log = logging.getLogger(__name__)


class Availability:
    """Whether the database answered last, and since when it has not."""

    def __init__(self, name: str, every: float, clock: Any = time.monotonic) -> None:
        self.name = name
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._said_at = 0.0
        self.failures = 0

    def failed(self, error: BaseException) -> None:
        """A connection or statement failed because the database is unreachable."""
        now = self._clock()
        with self._lock:
            self.failures += 1
            if self.down_since is None:
                self.down_since, self._said_at = now, now
                log.error(
                    "%s unavailable (%s): pages show what they have and retry; actions keep "
                    "audit records in the local journal",
                    self.name,
                    type(error).__name__,
                )
            elif now - self._said_at >= self.every:
                self._said_at = now
                log.warning(
                    "%s still unavailable after %.0f s (%d failed attempts, %s)",
                    self.name,
                    now - self.down_since,
                    self.failures,
                    type(error).__name__,
                )

    def answered(self) -> None:
        """A connection succeeded."""
        if self.down_since is None:  # the common case: no lock taken
            return
        with self._lock:
            if self.down_since is None:
                return
            lasted = self._clock() - self.down_since
            failures, self.down_since, self.failures = self.failures, None, 0
        log.warning(
            "%s available again after %.0f s (%d failed attempts)", self.name, lasted, failures
        )


def watch_availability(
    engine: Engine, name: str = "metrics database", every: float = 30.0
) -> Availability:
    """Log `engine`'s outages (see the module); returns the state it keeps."""
    state = Availability(name, every)

    def on_error(context: ExceptionContext) -> None:
        error = context.original_exception
        if context.is_pre_ping:  # a stale pooled connection: a fresh one is tried next
            return
        if context.is_disconnect or isinstance(context.sqlalchemy_exception, OperationalError):
            state.failed(error)
        elif isinstance(context.sqlalchemy_exception, DBAPIError) and context.connection is None:
            state.failed(error)  # a connection that could not be made

    def on_checkout(*_args: Any) -> None:
        state.answered()

    event.listen(engine, "handle_error", on_error)
    event.listen(engine, "checkout", on_checkout)
    return state


def probe_forever(engine: Engine, every: float) -> threading.Thread:
    """A daemon thread asking `engine`'s database `SELECT 1` every `every` seconds, so
    that an outage is logged (and its end) even while nobody looks at a page (`serve`).
    `engine` must be watched (`open_database` does it)."""
    from sqlalchemy import text

    def probe() -> None:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except Exception:  # logged by the watcher (by class); the next probe retries
                engine.dispose()  # no pooled connection survives an outage
            time.sleep(every)

    thread = threading.Thread(target=probe, name="database-probe", daemon=True)
    thread.start()
    return thread
