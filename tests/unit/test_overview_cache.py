"""SharedOverviewCache: one computation per environment and refresh interval."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from app.services.overview import Overview
from app.services.overview_cache import SharedOverviewCache

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting:
    """A compute function that counts its calls and names each result by call number."""

    def __init__(self, environment: str = "production") -> None:
        self.environment = environment
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> Overview:
        with self.lock:
            self.calls += 1
            number = self.calls
        return Overview(self.environment, f"call-{number}", AT, None, ())


def test_callers_in_the_same_bucket_share_one_computation() -> None:
    clock = Clock(100.0)
    cache = SharedOverviewCache(10, clock)
    compute = Counting()
    first = cache.get("production", compute)
    clock.now = 109.9
    second = cache.get("production", compute)
    assert second is first
    assert compute.calls == 1


def test_a_new_bucket_computes_again() -> None:
    clock = Clock(100.0)
    cache = SharedOverviewCache(10, clock)
    compute = Counting()
    first = cache.get("production", compute)
    clock.now = 110.0  # floor(110 / 10) = 11: the next interval
    second = cache.get("production", compute)
    assert (first.source, second.source) == ("call-1", "call-2")
    assert cache.computations == 2


def test_environments_are_kept_apart() -> None:
    cache = SharedOverviewCache(10, Clock(5.0))
    production = cache.get("production", Counting("production"))
    staging = cache.get("staging", Counting("staging"))
    assert (production.environment, staging.environment) == ("production", "staging")
    assert cache.get("production", Counting("other")) is production


def test_concurrent_callers_wait_for_the_first_computation() -> None:
    cache = SharedOverviewCache(10, Clock(5.0))
    started = threading.Event()
    release = threading.Event()
    calls = 0

    def slow() -> Overview:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(5)
        return Overview("production", "slow", AT, None, ())

    results: list[Overview] = []
    lock = threading.Lock()

    def viewer() -> None:
        overview = cache.get("production", slow)
        with lock:
            results.append(overview)

    threads = [threading.Thread(target=viewer) for _ in range(20)]
    threads[0].start()
    assert started.wait(5)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == 1
    assert len(results) == 20
    assert all(result is results[0] for result in results)


def test_an_error_reaches_the_caller_and_is_not_kept() -> None:
    cache = SharedOverviewCache(10, Clock(5.0))

    def failing() -> Overview:
        raise RuntimeError("prometheus down")

    with pytest.raises(RuntimeError, match="prometheus down"):
        cache.get("production", failing)
    compute = Counting()
    assert cache.get("production", compute).source == "call-1"
    assert compute.calls == 1


def test_waiters_of_a_failed_attempt_get_its_error() -> None:
    cache = SharedOverviewCache(10, Clock(5.0))
    started = threading.Event()
    release = threading.Event()

    def failing() -> Overview:
        started.set()
        release.wait(5)
        raise RuntimeError("timeout")

    errors: list[BaseException] = []

    def viewer() -> None:
        try:
            cache.get("production", failing)
        except RuntimeError as error:
            errors.append(error)

    first = threading.Thread(target=viewer)
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=viewer)
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert [str(e) for e in errors] == ["timeout", "timeout"]
    assert cache.get("production", Counting()).source == "call-1"


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
def test_a_ttl_must_be_a_positive_number(ttl: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SharedOverviewCache(ttl)
