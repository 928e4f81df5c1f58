"""The `unleash` preset on Unleash's own Prometheus endpoint, scraped by a real Prometheus.

The real Python `UnleashClient` evaluates users against the session's real Unleash and
reports its counts the way every SDK does (`POST /api/client/metrics`); Unleash turns
them into `feature_toggle_usage_total{toggle, active, appName}` at
`/internal-backstage/prometheus`, which has no variant and no environment label.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from UnleashClient import UnleashClient

from app.analysis.emitter import emitter_notes, single_environment_note
from app.demo.unleash_server import LocalUnleash
from queries.names import PRESETS, MetricPreset
from queries.prometheus import PrometheusMetrics
from tests.support.openfeature import start_scraping_prometheus
from tests.support.prometheus import PrometheusProcess
from tests.support.unleash import UnleashSeed

pytestmark = [pytest.mark.prometheus, pytest.mark.unleash]

NAMES = PRESETS[MetricPreset.UNLEASH]
FEATURE = "checkout_unleash"
USERS = 2000
WARM_UP = 20


@pytest.fixture
def scraping(unleash_server: LocalUnleash, tmp_path: Path) -> Iterator[PrometheusProcess]:
    """A Prometheus scraping the session's Unleash every second."""
    parts = urllib.parse.urlsplit(unleash_server.metrics_url)
    server = start_scraping_prometheus({"unleash": [parts.netloc]}, tmp_path, parts.path)
    try:
        yield server
    finally:
        server.stop()


def _query(url: str, promql: str) -> dict[str, float]:
    query = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as reply:
        result: list[dict[str, Any]] = json.loads(reply.read())["data"]["result"]
    return {series["metric"]["active"]: float(series["value"][1]) for series in result}


def _usage(url: str) -> dict[str, tuple[float, float]]:
    """Per `active` value of FEATURE: (sample time, counter) of the newest scrape."""
    selector = f'feature_toggle_usage_total{{toggle="{FEATURE}"}}'
    values = _query(url, selector)
    stamps = _query(url, f"timestamp({selector})")
    return {active: (stamps[active], value) for active, value in values.items() if active in stamps}


def _wait(check: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout:g} s")


def test_rates_and_on_share_equal_what_the_sdk_evaluated(
    unleash: UnleashSeed, scraping: PrometheusProcess, tmp_path: Path
) -> None:
    unleash.create(FEATURE, rollout=30)
    client = UnleashClient(
        url=unleash.server.api_url,
        app_name="preset-test",
        instance_id="preset-test-1",
        custom_headers={"Authorization": unleash.server.sdk_tokens["production"]},
        refresh_interval=1,
        metrics_interval=1,
        cache_directory=str(tmp_path / "cache"),
    )
    client.initialize_client()
    try:
        # warm-up: both counters exist before the measured evaluations, so that a rate
        # over the window sees their whole increase (a counter's first sample is no rise)
        warm = [client.is_enabled(FEATURE, {"userId": str(user)}) for user in range(WARM_UP)]
        assert any(warm) and not all(warm)

        def warmed_up() -> bool:
            usage = _usage(scraping.url)
            return set(usage) == {"true", "false"} and sum(v for _, v in usage.values()) == WARM_UP

        _wait(warmed_up, "the warm-up scrape")
        before = {active: value for active, (_, value) in _usage(scraping.url).items()}
        scraped_before = min(stamp for stamp, _ in _usage(scraping.url).values())
        time.sleep(1.5)  # a scrape with the warm-up counts alone
        users = range(WARM_UP, WARM_UP + USERS)
        evaluated = [client.is_enabled(FEATURE, {"userId": str(user)}) for user in users]
    finally:
        client.destroy()  # flushes the last metrics
    yes = sum(evaluated)
    expected = {"true": before["true"] + yes, "false": before["false"] + USERS - yes}

    def reported() -> bool:
        return {a: v for a, (_, v) in _usage(scraping.url).items()} == expected

    _wait(reported, "Unleash exporting the SDK's counts")
    time.sleep(2.5)  # two more scrapes at the final counts
    at = datetime.fromtimestamp(max(s for s, _ in _usage(scraping.url).values()), tz=UTC)
    # A whole-second window from the newest sample back to (just before) a scrape of the
    # warm-up counts: increase() sees every measured evaluation, and its extrapolation
    # towards the window's start (under a second, and never past the counter's zero)
    # can add at most the warm-up's own count to each series.
    window = timedelta(seconds=math.ceil(at.timestamp() - scraped_before))

    source = PrometheusMetrics(scraping.url, NAMES)
    counts = source.variant_counts("production", window, at)
    mine = counts[counts["flag"] == FEATURE]
    by_active = dict(zip(mine["variant"], mine["evaluations"], strict=True))
    assert set(by_active) == {"true", "false"} and set(mine["reason"]) == {""}
    print(f"{USERS} evaluations, {yes} on; Prometheus increase {by_active} over {window}")
    assert yes <= by_active["true"] <= yes + before["true"]
    assert USERS - yes <= by_active["false"] <= USERS - yes + before["false"]

    rates = source.evaluation_rates("production", window, at)
    mine_rates = rates[rates["flag"] == FEATURE]
    total_rate = float(mine_rates["evaluations_per_second"].sum())
    assert USERS <= total_rate * window.total_seconds() <= USERS + WARM_UP
    share = float(mine_rates[mine_rates["variant"] == "true"]["evaluations_per_second"].sum())
    assert share / total_rate == pytest.approx(yes / USERS, abs=WARM_UP / USERS)
    # single-environment mode: the environment asked for does not narrow anything
    elsewhere = source.evaluation_rates("development", window, at)
    assert elsewhere.equals(rates)
    assert source.error_rates("production", window, at).empty
    assert source.latency_quantiles("production", window, at).empty
    assert source.instance_versions("production", at).empty
    assert "environment" not in " ".join(source.issued)


def test_the_page_says_there_is_no_variant_or_environment_label() -> None:
    note = single_environment_note(NAMES, "production")
    assert note is not None and "no environment label" in note and "`production`" in note
    notes = emitter_notes(NAMES)
    assert notes[0].startswith("No variant label: the split shown is `active` true/false")
    assert "fails closed by policy" in notes[0]
    assert "Latency: not available from this emitter (no duration histogram)." in notes
