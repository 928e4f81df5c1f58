"""One overview computation per environment and refresh interval, shared by every viewer.

Time is cut into buckets of `ttl_seconds` (floor(now / ttl)); all callers in the same
bucket get the same `Overview`. A caller that finds the computation under way waits
for it instead of querying the sources again (single flight). Failures are handed to
the callers that waited for that attempt, then forgotten: the next call tries again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from app.services.overview import Overview

__all__ = ["SharedOverviewCache"]


class SharedOverviewCache:
    """Process-wide, thread-safe, time-bucketed overviews; no Streamlit needed.

    ValueError for a `ttl_seconds` that is not a positive number.
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        if not ttl_seconds > 0 or math.isinf(ttl_seconds):
            raise ValueError(f"ttl_seconds must be a positive number, got {ttl_seconds}")
        self.ttl_seconds = float(ttl_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        # environment -> (bucket, the overview of that bucket, done or under way)
        self._entries: dict[str, tuple[int, Future[Overview]]] = {}
        #: how many times `get` ran `compute` (a "requests per interval" figure reads it)
        self.computations = 0

    def get(self, environment: str, compute: Callable[[], Overview]) -> Overview:
        """The overview of `environment` for the current bucket, computing it at most once
        per bucket while it succeeds; `compute`'s exception reaches every caller waiting
        on that attempt and is not kept."""
        bucket = math.floor(self._clock() / self.ttl_seconds)
        with self._lock:
            entry = self._entries.get(environment)
            if entry is not None and entry[0] == bucket:
                pending = entry[1]
                owner = False
            else:
                # An older bucket is simply replaced: one entry per environment at most.
                pending = Future()
                self._entries[environment] = (bucket, pending)
                self.computations += 1
                owner = True
        if not owner:
            return pending.result()
        try:
            overview = compute()
        except BaseException as error:
            with self._lock:
                if self._entries.get(environment, (None, None))[1] is pending:
                    del self._entries[environment]
            pending.set_exception(error)
            raise
        pending.set_result(overview)
        return overview

    def clear(self) -> None:
        """Forget every overview (under-way computations still finish for their waiters)."""
        with self._lock:
            self._entries.clear()
