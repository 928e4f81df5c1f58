"""Real OpenFeature services (tests/openfeature: the JS server SDK, its MetricsHook and the
OpenTelemetry Prometheus exporter) scraped live by a real Prometheus.

`openfeature_scrape` starts, once per session, one service per environment of `PLANS`
(each with `deployment.environment.name` set as a resource attribute, as OpenTelemetry
has it) and a Prometheus scraping them every second, and waits until a rate window of
samples is in. What each service counted (what the SDK returned) is read back from its
JSON file. Fails (never skips) when node, the npm packages or Prometheus are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import PrometheusProcess, _require
from tests.support.servers import ROOT, ServerProcess, free_port

__all__ = [
    "PLANS",
    "WINDOW",
    "Counted",
    "OpenFeatureScrape",
    "openfeature_scrape",
    "start_scraping_prometheus",
]

SERVICE_DIR = ROOT / "tests" / "openfeature"
#: the rate window the tests ask for; the fixture waits until it is full of samples
WINDOW = timedelta(seconds=10)
TICK_MS = 500  # about 4 % of a core per service (measured), for the rest of the session

#: per environment, per flag: how many users of each tick fail, are targeted (treatment,
#: TARGETING_MATCH), get the treatment or the control by SPLIT
PLANS: dict[str, dict[str, dict[str, int]]] = {
    "production": {
        # fails 10 %; the rest split 25 % on
        "new_checkout": {"fail": 20, "targeted": 0, "treatment": 45, "control": 135},
        # healthy, 50 % on by SPLIT plus 10 % of users targeted
        "dark_mode": {"fail": 0, "targeted": 20, "treatment": 90, "control": 90},
        # every evaluation fails: never a success series at all
        "search_v2": {"fail": 40, "targeted": 0, "treatment": 0, "control": 0},
    },
    "staging": {
        "new_checkout": {"fail": 0, "targeted": 0, "treatment": 10, "control": 190},
        "dark_mode": {"fail": 0, "targeted": 0, "treatment": 100, "control": 100},
    },
}


@dataclass(frozen=True)
class Counted:
    """What one service counted: per flag `evaluations`, `errors`, `variants`, `reasons`,
    and the time every tick of evaluations ended."""

    flags: dict[str, dict[str, Any]]
    tick_times: tuple[float, ...]

    def rate(self, flag: str, start: datetime, end: datetime, per_tick: int) -> float:
        """Evaluations per second of `flag` in (start, end], from the ticks in it."""
        ticks = sum(start.timestamp() < t <= end.timestamp() for t in self.tick_times)
        return ticks * per_tick / (end - start).total_seconds()


@dataclass
class OpenFeatureScrape:
    prometheus: PrometheusProcess
    services: dict[str, ServerProcess]
    counted_files: dict[str, Path]

    def counted(self, environment: str) -> Counted:
        document = json.loads(self.counted_files[environment].read_text(encoding="utf-8"))
        return Counted(document["flags"], tuple(document["tick_times"]))

    def exposition(self, environment: str) -> str:
        """The service's /metrics text, as the exporter serves it."""
        with urllib.request.urlopen(self.services[environment].url, timeout=5) as reply:
            return str(reply.read().decode())

    def newest_scrape(self) -> datetime:
        """The time of the newest sample Prometheus holds from the services."""
        reply = _query(self.prometheus.url, "max(timestamp(target_info))")
        return datetime.fromtimestamp(float(reply[0]["value"][1]), tz=UTC)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as reply:
        return list(json.loads(reply.read())["data"]["result"])


def start_openfeature_service(
    environment: str, flags: Mapping[str, Mapping[str, int]], workdir: Path
) -> tuple[ServerProcess, Path]:
    """One service evaluating `flags` as planned in `environment`; its /metrics process
    and the file it writes its counts to. RuntimeError when it does not start."""
    node = shutil.which("node")
    if node is None or not (SERVICE_DIR / "node_modules").is_dir():
        raise RuntimeError("node or tests/openfeature/node_modules missing: run `make test`")
    port = free_port()
    counted = workdir / f"counted-{environment}.json"
    plan = workdir / f"plan-{environment}.json"
    plan.write_text(
        json.dumps(
            {
                "environment": environment,
                "port": port,
                "out": str(counted),
                "tick_ms": TICK_MS,
                "flags": flags,
            }
        )
    )
    log_path = workdir / f"service-{environment}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, str(SERVICE_DIR / "service.mjs"), str(plan)],
            cwd=SERVICE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}/metrics", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if counted.exists() and b'"port"' in log_path.read_bytes():
            return server, counted
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"the OpenFeature service did not start:\n{log_path.read_text()[-2000:]}")


def start_scraping_prometheus(
    targets: Mapping[str, Sequence[str]], workdir: Path, metrics_path: str = "/metrics"
) -> PrometheusProcess:
    """A Prometheus scraping each job's `host:port` targets every second at
    `metrics_path`, once `/-/ready` answers. RuntimeError when it does not start."""
    prometheus = _require("prometheus")
    config = workdir / "prometheus.yml"
    jobs = "".join(
        f"  - job_name: {json.dumps(job)}\n"
        f"    metrics_path: {json.dumps(metrics_path)}\n"
        f"    static_configs:\n      - targets: {json.dumps(list(hosts))}\n"
        for job, hosts in targets.items()
    )
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusProcess(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"prometheus did not start:\n{log_path.read_text()[-2000:]}")


def wait_for_samples(url: str, series: str, span: timedelta, timeout: float = 60.0) -> None:
    """Until every series of `series` has `span` of one-second scrapes in Prometheus.
    RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    wanted = span.total_seconds()
    while time.monotonic() < deadline:
        result = _query(url, f"min(count_over_time({series}[5m]))")
        if result and float(result[0]["value"][1]) > wanted:
            return
        time.sleep(0.5)
    raise RuntimeError(f"no {span} of samples of {series} within {timeout:g} s")


@pytest.fixture(scope="session")
def openfeature_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenFeatureScrape]:
    """The session's OpenFeature services and the Prometheus scraping them, with a full
    `WINDOW` (plus a few scrapes) of samples in."""
    workdir = Path(tmp_path_factory.mktemp("openfeature"))
    services: dict[str, ServerProcess] = {}
    files: dict[str, Path] = {}
    prometheus: PrometheusProcess | None = None
    try:
        for environment, flags in PLANS.items():
            services[environment], files[environment] = start_openfeature_service(
                environment, flags, workdir
            )
        hosts = [urllib.parse.urlsplit(s.url).netloc for s in services.values()]
        prometheus = start_scraping_prometheus({"openfeature-service": hosts}, workdir)
        wait_for_samples(prometheus.url, "target_info", WINDOW + timedelta(seconds=4))
    except RuntimeError as error:
        for server in [*services.values(), *([prometheus] if prometheus else [])]:
            server.stop()
        pytest.fail(f"could not start the OpenFeature services and their Prometheus: {error}")
    try:
        yield OpenFeatureScrape(prometheus, services, files)
    finally:
        prometheus.stop()
        for server in services.values():
            server.stop()
