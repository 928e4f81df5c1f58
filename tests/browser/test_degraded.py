"""The overview when Prometheus goes away or turns slow: it says so and shows the numbers
of the database roll-ups, never a traceback, and a slow Prometheus costs at most its
timeout.

Prometheus here holds the reference workload up to the moment the test starts (the
overview asks about "now"); the database holds it until an hour after, so its 5-minute
rates are exact whenever the page loads (production alpha: 1.00/s, 6.67 % errors).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import streamlit as st
from playwright.sync_api import Browser, Page, expect
from streamlit.testing.v1 import AppTest

from app.metrics_db.database import insert_rollups, open_database
from app.serve import streamlit_command
from tests.support import grid
from tests.support.prometheus import PrometheusProcess, openmetrics_from_rollups, start_prometheus
from tests.support.servers import Process, free_port, start
from tests.support.slow_proxy import SlowProxy
from tests.support.workload import reference_rollups

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
TIMEOUT_SECONDS = 1.0
PROXY_DELAY_SECONDS = 4.0
FLAGS = """
version: "7"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1}
  beta:
    state: enabled
    metadata: {phase: 2}
"""


@pytest.fixture
def live_prometheus(tmp_path: Path) -> Iterator[PrometheusProcess]:
    """The reference workload over the two hours up to now, timestamps in seconds."""
    now = datetime.now(UTC).replace(microsecond=0)
    server = start_prometheus(
        openmetrics_from_rollups(reference_rollups(now, hours=2.0)), tmp_path / "prometheus"
    )
    yield server
    server.stop()


def _state_dir(root: Path) -> Path:
    """Flags and a database with the workload from an hour ago to an hour ahead."""
    root.mkdir(parents=True)
    (root / "feature_flags.yaml").write_text(FLAGS)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    engine = open_database(f"sqlite:///{root / 'metrics.db'}")
    insert_rollups(engine, reference_rollups(end, hours=2.0))
    engine.dispose()
    return root


REFRESH_SECONDS = 2


def _dashboard(state: Path, prometheus_url: str | None) -> Process:
    env = {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS": f"{TIMEOUT_SECONDS:g}",
        # Overviews are shared for one refresh interval: the shortest one, so that
        # a load after `_next_interval()` asks the sources again.
        "ROLLOUT_REFRESH_SECONDS": f"{REFRESH_SECONDS}",
    }
    if prometheus_url is not None:
        env["ROLLOUT_PROMETHEUS_URL"] = prometheus_url
    port = free_port()
    return start(streamlit_command(port), env, port, state / "streamlit.log")


def _next_interval() -> None:
    """Wait until the shared overview cache's time bucket has turned."""
    time.sleep(REFRESH_SECONDS - time.time() % REFRESH_SECONDS + 0.05)


def _rate_of(page: Page, flag: str) -> str:
    """The Evaluations cell of `flag`'s row in the overview grid."""
    return grid.row(page, flag, width=12, offset=1)[7]  # Evaluations (after Health … State)


def _seconds_until_table(browser: Browser, url: str) -> float:
    """From navigation until the overview's grid shows the alpha row (its link cell)."""
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    try:
        _next_interval()  # a fresh query, not the overview another load cached
        began = time.monotonic()
        page.goto(url)
        cell = page.locator('[data-testid="stDataFrame"] [role="gridcell"]')
        # The grid's accessible table is attached but not "visible" (it is drawn on a canvas).
        cell.filter(has_text=re.compile(r"[?&]flag=alpha$")).first.wait_for(
            state="attached", timeout=30_000
        )
        return time.monotonic() - began
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.prometheus
def test_prometheus_stopped_mid_test_falls_back_to_the_database(
    chromium: Browser, live_prometheus: PrometheusProcess, tmp_path: Path
):
    dashboard = _dashboard(_state_dir(tmp_path / "state"), live_prometheus.url)
    page = chromium.new_page(viewport={"width": 1600, "height": 900})
    try:
        page.goto(dashboard.url)
        expect(page.get_by_text("Prometheus (live)")).to_be_visible(timeout=30_000)
        assert _rate_of(page, "alpha").endswith("/s")
        expect(page.get_by_text("prometheus unavailable")).to_have_count(0)

        live_prometheus.stop()
        _next_interval()
        page.reload()
        warning = page.get_by_text("prometheus unavailable")
        expect(warning).to_be_visible(timeout=30_000)
        expect(warning).to_contain_text("cannot connect")
        expect(page.get_by_text("metrics database roll-ups")).to_be_visible()
        expect(page.get_by_text("Prometheus (live)")).to_have_count(0)
        health, flag, *_ = grid.row(page, "alpha", width=12, offset=1)
        assert (health, flag) == ("🔴 unhealthy", "alpha")
        assert _rate_of(page, "alpha") == "1.00/s"
        assert _rate_of(page, "beta") == "0.20/s"
        expect(page.get_by_text("Traceback")).to_have_count(0)
    finally:
        page.close()
        dashboard.stop()


@pytest.mark.prometheus
def test_prometheus_stopped_between_runs_in_apptest(
    live_prometheus: PrometheusProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_rollout_environment,
):
    state = _state_dir(tmp_path / "state")
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(state))
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", live_prometheus.url)
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ROLLOUT_REFRESH_SECONDS", f"{REFRESH_SECONDS}")
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30).run()
        assert not at.exception
        assert any("Prometheus (live)" in c.value for c in at.caption)
        assert not at.warning

        live_prometheus.stop()
        _next_interval()
        at.run()
        assert not at.exception
        warnings = [w.value for w in at.warning]
        assert any(w.startswith("prometheus unavailable: cannot connect") for w in warnings)
        assert any("metrics database roll-ups" in c.value for c in at.caption)
        frame = at.dataframe[0].value
        table = frame.assign(Flag=frame["Flag"].map(grid.as_displayed)).set_index("Flag")
        assert table.loc["alpha", "Evaluations"] == "1.00/s"
        assert table.loc["alpha", "Errors"] == "6.67 %"
    finally:
        st.cache_resource.clear()


@pytest.mark.browser
@pytest.mark.prometheus
def test_slow_prometheus_costs_at_most_its_timeout(
    chromium: Browser, live_prometheus: PrometheusProcess, tmp_path: Path
):
    """The one timing assertion of the suite: with Prometheus answering only after
    PROXY_DELAY_SECONDS, the page gives up after its 1 s timeout and shows the database's
    numbers; it may take at most the baseline (no Prometheus) + timeout + 1 s."""
    upstream = urlsplit(live_prometheus.url)
    assert upstream.hostname is not None and upstream.port is not None
    with SlowProxy((upstream.hostname, upstream.port), PROXY_DELAY_SECONDS) as proxy:
        baseline_app = _dashboard(_state_dir(tmp_path / "baseline"), None)
        slowed_app = _dashboard(_state_dir(tmp_path / "slowed"), proxy.url)
        try:
            # A first load each: imports and the runtime are built once per process.
            for app in (baseline_app, slowed_app):
                _seconds_until_table(chromium, app.url)
            baseline = [_seconds_until_table(chromium, baseline_app.url) for _ in range(3)]
            slowed = [_seconds_until_table(chromium, slowed_app.url) for _ in range(3)]
            print(f"\nbaseline {baseline} s, slowed {slowed} s")

            page = chromium.new_page(viewport={"width": 1600, "height": 900})
            _next_interval()
            page.goto(slowed_app.url)
            warning = page.get_by_text("prometheus unavailable")
            expect(warning).to_be_visible(timeout=30_000)
            expect(warning).to_contain_text(f"no answer within {TIMEOUT_SECONDS:g}s")
            assert _rate_of(page, "alpha") == "1.00/s"
            page.close()
        finally:
            baseline_app.stop()
            slowed_app.stop()
    assert proxy.connections >= 4  # every slowed load really went through the proxy
    limit = statistics.median(baseline) + TIMEOUT_SECONDS + 1.0
    assert statistics.median(slowed) <= limit, (baseline, slowed)
