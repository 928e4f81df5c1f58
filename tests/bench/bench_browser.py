"""Browser: navigation to the overview grid holding every row, in a real headless Chromium.

Run: `make bench` (or `uv run python -m tests.bench.bench_browser [--runs N] [--tiers 22,1000]`).

For 22, 1,000 and 5,000 flags: a Prometheus backfilled around now (one instance scraped
every 30 s; the recording rules' series written by promtool from that data) and the
dashboard on it as deployed at scale (`ROLLOUT_USE_RECORDING_RULES=true`, 5-minute rate
window, 5-minute sparklines). Each run, N times, median and spread:

- baseline, the data build: `Runtime.overview(environment)` in this process with the
  dashboard's settings, warm: what the page's shared overview cache computes;
- navigation, overview computed: `page.goto` until the grid holds every row: its
  accessible table reports them (`aria-rowcount` = rows + 1, set once the grid has the
  whole frame) and has drawn its first cell. The navigation starts just after the shared
  overview cache's interval turned, so the page computes the overview itself; the
  Prometheus request counter proves it (6 requests per computed navigation);
- navigation, overview cached: the same again within that interval (0 requests): the
  page's own cost (script, frame serialisation, transfer, drawing).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from app.runtime import open_runtime
from app.serve import streamlit_command
from app.settings import Settings
from tests.bench.workloads import Workload, write_config
from tests.support.chromium import CHROMIUM_ARGS
from tests.support.prometheus import PrometheusProcess, start_prometheus, with_recorded_series
from tests.support.servers import Process, free_port, start

ENVIRONMENT = "production"
REFRESH_SECONDS = 20  # the cache interval: a computed and a cached navigation fit in it
INTERVAL_SECONDS = 30
PAST_MINUTES = 7  # the 5-minute rate window and sparkline, and a margin
GRID = '[data-testid="stDataFrame"] table[role="grid"]'


def spread(samples: list[float], unit: str = " ms") -> str:
    return (
        f"median {statistics.median(samples):7.0f}{unit}  "
        f"min {min(samples):6.0f}  max {max(samples):6.0f}  (n={len(samples)})"
    )


def settings_env(state: Path, prometheus: str) -> dict[str, str]:
    """The dashboard's settings, as environment variables."""
    return {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_PROMETHEUS_URL": prometheus,
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS": "60",
        "ROLLOUT_USE_RECORDING_RULES": "true",
        "ROLLOUT_RATE_WINDOW_SECONDS": "300",
        "ROLLOUT_SPARKLINE_MINUTES": "5",
        "ROLLOUT_REFRESH_SECONDS": str(REFRESH_SECONDS),
        "ROLLOUT_ENVIRONMENT": ENVIRONMENT,
    }


def prometheus_requests(server: PrometheusProcess) -> float:
    """Query API requests Prometheus has answered so far (its own counter)."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{")
        and ('handler="/api/v1/query"' in line or 'handler="/api/v1/query_range"' in line)
    )


class Tier:
    """Prometheus, config and dashboard for `flags` flags, data until `minutes_ahead` on."""

    def __init__(self, flags: int, workdir: Path, minutes_ahead: int) -> None:
        started = time.perf_counter()
        self.flags = flags
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.end = now + timedelta(minutes=minutes_ahead)
        workload = Workload(
            flags,
            instances=1,
            minutes=PAST_MINUTES + minutes_ahead,
            end=self.end,
            interval_seconds=INTERVAL_SECONDS,
        )
        generated = workdir / "generated.om.txt"
        workdir.mkdir(parents=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.workloads",
                *(str(n) for n in (flags, 1, workload.minutes)),
                str(generated),
                *(str(n) for n in (int(self.end.timestamp()), INTERVAL_SECONDS)),
            ],
            check=True,
        )
        text = generated.read_text()
        generated.unlink()
        self.prometheus = start_prometheus(text, workdir / "prometheus")
        del text
        rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rollout.rules.yml"
        self.prometheus = with_recorded_series(
            self.prometheus, workdir / "prometheus", rules, workload.start, self.end
        )
        state = workdir / "state"
        state.mkdir()
        write_config(state, flags)
        self.env = settings_env(state, self.prometheus.url)
        port = free_port()
        self.dashboard: Process = start(streamlit_command(port), self.env, port, state / "log")
        self.setup_seconds = time.perf_counter() - started

    def data_build(self) -> Callable[[], float]:
        """A warm `Runtime.overview` with the dashboard's settings; each call: ms."""
        keys = {k.removeprefix("ROLLOUT_").lower(): v for k, v in self.env.items()}
        runtime = open_runtime(Settings(**keys))  # type: ignore[arg-type]

        def build() -> float:
            started = time.perf_counter()
            overview = runtime.overview(ENVIRONMENT)
            elapsed = (time.perf_counter() - started) * 1000
            assert overview.source == "prometheus", overview.notices
            assert len(overview.rows) == self.flags and overview.queries == 6
            return elapsed

        build()
        return build

    def check_time_left(self) -> None:
        if datetime.now(UTC) > self.end - timedelta(seconds=45):
            raise SystemExit("the backfilled data ends too soon: raise minutes_ahead")

    def stop(self) -> None:
        self.dashboard.stop()
        self.prometheus.stop()


def navigate(browser: Browser, url: str, rows: int) -> tuple[float, float]:
    """Milliseconds from `goto` until the grid holds `rows` rows and has drawn a cell,
    and until the page's title showed (Streamlit booted, the script running)."""
    page: Page = browser.new_page(viewport={"width": 1600, "height": 900})
    try:
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector('h1:has-text("Rollout overview")', timeout=180_000)
        title = (time.perf_counter() - started) * 1000
        page.wait_for_selector(
            f'{GRID}[aria-rowcount="{rows + 1}"]', state="attached", timeout=180_000
        )
        page.wait_for_selector(f'{GRID} [role="gridcell"]', state="attached", timeout=60_000)
        elapsed = (time.perf_counter() - started) * 1000
        assert page.get_by_text("Traceback").count() == 0
        return elapsed, title
    finally:
        page.close()


def wait_for_next_interval() -> None:
    """Sleep until 0.2 s into the next cache interval (floor(now / REFRESH_SECONDS))."""
    now = time.time()
    time.sleep(REFRESH_SECONDS - now % REFRESH_SECONDS + 0.2)


def measure(tier: Tier, browser: Browser, runs: int) -> float:
    url = tier.dashboard.url
    build = tier.data_build()
    navigate(browser, url, tier.flags)  # warm: static files cached, first script run done
    figures: dict[str, list[float]] = {k: [] for k in ("built", "computed", "cached", "title")}
    for _ in range(runs):
        tier.check_time_left()
        wait_for_next_interval()
        before = prometheus_requests(tier.prometheus)
        figures["computed"].append(navigate(browser, url, tier.flags)[0])
        middle = prometheus_requests(tier.prometheus)
        cached, title = navigate(browser, url, tier.flags)
        figures["cached"].append(cached)
        figures["title"].append(title)
        after = prometheus_requests(tier.prometheus)
        # one overview computed by the first navigation, none by the second
        assert (middle - before, after - middle) == (6, 0), (before, middle, after)
        figures["built"].append(build())
    baseline = statistics.median(figures["built"])
    labels = {
        "built": "baseline: data build (Runtime.overview)",
        "computed": "navigation, overview computed",
        "cached": "navigation, overview cached",
        "title": "  of which until the title shows (boot)",
    }
    for key, label in labels.items():
        ratio = statistics.median(figures[key]) / baseline
        print(f"  {label:<42} {spread(figures[key])}  = {ratio:.2f}x baseline")
    return statistics.median(figures["computed"]) / baseline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tiers", default="22,1000,5000")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"headless Chromium via Playwright, {args.runs} runs per tier")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        for flags in (int(n) for n in args.tiers.split(",")):
            # setup takes about a minute per 1,000 flags on this machine, the runs
            # 2 intervals each
            # setup, the first navigation (imports) and each run: generous, checked
            ahead = 5 + flags // 1000 + -(-args.runs * 2 * REFRESH_SECONDS // 60)
            tier = Tier(flags, Path(tmp) / str(flags), ahead)
            print(
                f"\n{flags:,} flags (1 instance, {INTERVAL_SECONDS} s scrapes; backfill, rules "
                f"and dashboard start {tier.setup_seconds:.0f} s)"
            )
            try:
                ratio = measure(tier, browser, args.runs)
            finally:
                tier.stop()
            if flags == 1000:
                print(f"  target: navigation <= 1.5x the data build at 1,000 flags: {ratio:.2f}x")
        browser.close()


if __name__ == "__main__":
    main()
