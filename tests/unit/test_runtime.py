"""The runtime makes its PromQL client and its shared overview cache on first use, once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.flags.loader import BUNDLED_CONFIG
from app.runtime import open_runtime
from app.settings import load_settings


@pytest.fixture
def settings_for(tmp_path: Path, no_rollout_environment):
    def make(**overrides: object):
        return load_settings(state_dir=tmp_path, flags_file=BUNDLED_CONFIG, **overrides)

    return make


def test_the_promql_client_is_made_once_from_the_settings(settings_for) -> None:
    runtime = open_runtime(settings_for(prometheus_url="http://user:pw@127.0.0.1:9/prom/"))
    client = runtime.prometheus
    assert client is not None and runtime.prometheus is client
    assert runtime.sources.metrics()[0] is client


def test_no_promql_client_without_a_url(settings_for) -> None:
    runtime = open_runtime(settings_for())
    assert runtime.prometheus is None
    assert [source.name for source in runtime.sources.metrics()] == ["sql"]


def test_viewers_asking_at_once_share_one_overview_cache(settings_for) -> None:
    runtime = open_runtime(settings_for(refresh_seconds=7))
    start = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        start.wait()
        seen.append(runtime.overview_cache)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len({id(cache) for cache in seen}) == 1
