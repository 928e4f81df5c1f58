"""The demo simulator's workload served live on `/metrics` for a real Prometheus to
scrape every second, with regressions injected on demand, and the figures of a
mitigation read back from Prometheus.

The workload runs in a thread of the test process (`Workload.tick` every 0.1 s with
`speed` times the elapsed time, so a flag sees tens to hundreds of evaluations a
second); its flags file is the one the test's flag backend writes, and the reference
evaluator hot-reloads it, as a service would.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from app.demo import simulator
from app.demo.simulator import Workload
from tests.support.servers import free_port

__all__ = [
    "LiveSimulation",
    "Mitigation",
    "mitigation",
    "start_simulation",
    "write_flags",
]

ENVIRONMENT = "production"
TREATMENT = "on"


def write_flags(directory: Path, flags: Mapping[str, float]) -> Path:
    """A base flags file with boolean flags in rollout at the given percentages (the
    simulated production), and empty override files for both simulated environments."""
    lines = ['version: "1.0.0"', "flags:"]
    for key, percentage in flags.items():
        lines += [
            f"  {key}:",
            "    state: rollout",
            '    default_variant: "off"',
            '    variants: {"on": true, "off": false}',
            f"    rollout: {{strategy: percentage, percentage: {percentage:g}, sticky: true}}",
            f"    metadata: {{phase: 1, description: 'autopilot test flag {key}'}}",
        ]
    base = directory / "feature_flags.yaml"
    base.write_text("\n".join(lines) + "\n")
    for environment in simulator.ENVIRONMENTS:
        (directory / f"feature_flags_{environment}.yaml").write_text("flags: {}\n")
    return base


@dataclass
class LiveSimulation:
    """The running workload: `target` is its `/metrics` host:port."""

    workload: Workload
    target: str
    _stop: threading.Event
    _threads: list[threading.Thread]
    _server: Any
    injected_at: dict[str, datetime] = field(default_factory=dict)

    def fail_treatment(self, flag: str, probability: float) -> datetime:
        """Inject a regression of `flag`'s treatment now; returns when it began."""
        self.workload.fail_treatment(flag, probability)
        at = datetime.now(UTC)
        self.injected_at[flag] = at
        return at

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)


def start_simulation(flags_file: Path, speed: float = 30.0, seed: int = 7) -> LiveSimulation:
    """The workload over `flags_file` on a free port, ticking in a thread at `speed`
    times real time. The caller stops it."""
    registry = CollectorRegistry()
    workload = Workload(flags_file, registry, seed=seed)
    port = free_port()
    server, serving = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def run() -> None:
        last = time.monotonic()
        while not stop.is_set():
            stop.wait(0.1)
            now = time.monotonic()
            workload.tick((now - last) * speed, datetime.now(UTC))
            workload.rollups.drain(datetime.now(UTC), now - last)  # Prometheus only
            workload.requests.drain(datetime.now(UTC), now - last)
            last = now

    ticking = threading.Thread(target=run, name="simulated-traffic", daemon=True)
    ticking.start()
    return LiveSimulation(workload, f"127.0.0.1:{port}", stop, [ticking, serving], server)


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> None:
    """Poll `done` every 0.2 s; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


def ticking(run: Callable[[threading.Event], object]) -> tuple[threading.Event, threading.Thread]:
    """A controller's `run` in a daemon thread, and the event that stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def query(url: str, promql: str, at: datetime) -> list[dict[str, Any]]:
    """An instant query's result list; RuntimeError when Prometheus says no."""
    params = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=10) as reply:
        document = json.load(reply)
    if document.get("status") != "success":
        raise RuntimeError(f"{promql}: {document}")
    return list(document["data"]["result"])


def increments(
    url: str, selector: str, at: datetime, span: timedelta
) -> list[tuple[datetime, float]]:
    """Per scrape, how much the series of `selector` grew since the scrape before,
    summed, in time order, over the `span` before `at`. A series born within the span
    counts its first value (it started at 0: the emitter shows a label set once used)."""
    seconds = int(span.total_seconds())
    span_start = (at - span).timestamp()
    grown: dict[float, float] = {}
    for series in query(url, f"{selector}[{seconds}s]", at):
        points = [(float(t), float(v)) for t, v in series["values"]]
        born, first = points[0]
        grown[born] = grown.get(born, 0.0) + (first if born > span_start + 1.5 else 0.0)
        for (_, before), (stamp, value) in pairwise(points):
            grown[stamp] = grown.get(stamp, 0.0) + max(0.0, value - before)
    return [(datetime.fromtimestamp(t, UTC), grown[t]) for t in sorted(grown)]


@dataclass(frozen=True)
class Mitigation:
    """One injected regression and its mitigation, every time from the same clock."""

    flag: str
    injected_at: datetime
    first_failing_scrape: datetime
    rollback_applied_at: datetime
    #: the first scrape from which the treatment evaluates below 1 % of its rate before
    below_one_percent_at: datetime | None
    treatment_per_second_before: float

    @property
    def seconds_to_rollback(self) -> float:
        return (self.rollback_applied_at - self.first_failing_scrape).total_seconds()

    @property
    def seconds_to_below_one_percent(self) -> float | None:
        if self.below_one_percent_at is None:
            return None
        return (self.below_one_percent_at - self.first_failing_scrape).total_seconds()

    def as_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "injected_at": self.injected_at.isoformat(),
            "first_failing_scrape": self.first_failing_scrape.isoformat(),
            "rollback_applied_at": self.rollback_applied_at.isoformat(),
            "below_one_percent_at": (
                self.below_one_percent_at.isoformat() if self.below_one_percent_at else None
            ),
            "treatment_per_second_before": round(self.treatment_per_second_before, 2),
            "seconds_to_rollback": round(self.seconds_to_rollback, 3),
            "seconds_to_below_one_percent": (
                None
                if self.seconds_to_below_one_percent is None
                else round(self.seconds_to_below_one_percent, 3)
            ),
        }


def _selector(flag: str, reason: str | None = None) -> str:
    labels = f'flag="{flag}",variant="{TREATMENT}",environment="{ENVIRONMENT}"'
    if reason is not None:
        labels += f',reason="{reason}"'
    return f"feature_flag_evaluations_total{{{labels}}}"


def mitigation(
    url: str,
    flag: str,
    injected_at: datetime,
    rollback_applied_at: datetime,
    quiet: timedelta = timedelta(seconds=3),
    timeout: float = 30.0,
) -> Mitigation | None:
    """The figures of one mitigation read from Prometheus at `url`: waits (up to
    `timeout` s) until `quiet` of scrapes after the rollback show the treatment below
    1 % of its rate in the 10 s before the injection. None when no failing scrape
    after `injected_at` is found."""
    deadline = time.monotonic() + timeout
    while True:
        now = datetime.now(UTC)
        span = now - injected_at + timedelta(seconds=15)
        failing = [
            t
            for t, grown in increments(url, _selector(flag, "error"), now, span)
            if t > injected_at and grown > 0
        ]
        if not failing:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)
            continue
        evaluated = increments(url, _selector(flag), now, span)
        before = [
            (t, g) for t, g in evaluated if injected_at - timedelta(seconds=10) < t <= injected_at
        ]
        rate = sum(g for _, g in before) / 10.0
        limit = 0.01 * rate
        after = [(t, g) for t, g in evaluated if t > rollback_applied_at]
        # the first scrape from which every scrape (about a second apart) stays below
        below = next(
            (t for i, (t, _) in enumerate(after) if all(g < limit for _, g in after[i:])),
            None,
        )
        settled = below is not None and now - below >= quiet
        if settled or time.monotonic() > deadline:
            return Mitigation(flag, injected_at, failing[0], rollback_applied_at, below, rate)
        time.sleep(0.5)
