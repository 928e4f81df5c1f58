"""Evaluations that follow the flags, written as roll-ups into a metrics database every
half second: a service whose treatment share is exactly the configured percentage and
that never fails, so every autopilot gate passes once a window at a step is whole."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.flags.backend import FlagBackend
from app.flags.model import FlagState
from app.metrics_db.database import insert_rollups
from app.metrics_db.records import EvaluationRollup

__all__ = ["RollupFeeder"]


class RollupFeeder:
    """Writes `per_interval` evaluations of each of `flags` every `interval` into
    `engine`, split as `backend` configures the flag now. A database that refuses a
    write is skipped (the test may have stopped it on purpose)."""

    def __init__(
        self,
        engine: Engine,
        backend: FlagBackend,
        environment: str,
        flags: Sequence[str],
        interval: float = 0.5,
        per_interval: int = 400,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.environment = environment
        self.flags = tuple(flags)
        self.interval = interval
        self.per_interval = per_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollup-feeder", daemon=True)

    def __enter__(self) -> RollupFeeder:
        self.feed()  # a first interval at once
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def feed(self) -> None:
        snapshot = self.backend.load(self.environment)
        start = datetime.now(UTC) - timedelta(seconds=self.interval)
        rows = []
        for key in self.flags:
            flag = snapshot.flag(key)
            share = 0.0 if flag.state is FlagState.DISABLED else flag.percentage / 100
            treated = round(self.per_interval * share)
            for variant, count in (
                (flag.rollout.variant, treated),
                (flag.default_variant, self.per_interval - treated),
            ):
                if count:
                    rows.append(
                        EvaluationRollup(
                            start, self.interval, self.environment, key, variant, "split", count
                        )
                    )
        with contextlib.suppress(SQLAlchemyError):
            insert_rollups(self.engine, rows)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.feed()
