"""Issue 21: a live service exporting the seed's names whose failed evaluations are
counted in `feature_flag_evaluation_errors_total` while every evaluation carries reason
`split` (an emitter with a separate error counter), scraped every second by a real
Prometheus. Every view reads the flag's errors from the one definition
(`app.analysis.failures`): `status --json`, the advance guard of `advance --dry-run
--json`, the autopilot's tick and the webhook it sends all say 20 %, the guard fails and
the autopilot rolls the flag back by itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.audit import Outcome
from app.autopilot.decide import Move
from app.autopilot.model import PlanOptions, PlanStatus
from app.autopilot.service import set_plan
from app.cli import main
from app.flags.model import FlagState
from app.metrics_db.database import open_database
from app.notify import WebhookNotifier
from app.runtime import open_runtime
from app.settings import load_settings
from tests.support.identities import OPERATOR
from tests.support.live_simulation import ENVIRONMENT, write_flags
from tests.support.openfeature import start_scraping_prometheus, wait_for_samples
from tests.support.prometheus import PrometheusProcess
from tests.support.servers import free_port
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.prometheus

FLAG = "checkout_v2"
PERCENTAGE = 25.0
#: per tick of 0.1 s: 5 evaluations on the treatment, 15 on the control (25 %), and 4 of
#: the 20 failed (1 treatment, 3 control): counted by the error counter, reason split
ON, OFF, FAILED = 5, 15, 4
WINDOW_SECONDS = 10


class CounterOnlyService(Collector):
    """What the service exports, read under one lock: a scrape never sees a tick half
    counted, so every scrape holds exactly 20 % failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on = self._off = self._failed = 0

    def tick(self) -> None:
        with self._lock:
            self._on += ON
            self._off += OFF
            self._failed += FAILED

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            on, off, failed = self._on, self._off, self._failed
        evaluations = CounterMetricFamily(
            "feature_flag_evaluations",
            "Feature flag evaluations",
            labels=["flag", "variant", "reason", "environment"],
        )
        evaluations.add_metric([FLAG, "on", "split", ENVIRONMENT], on)
        evaluations.add_metric([FLAG, "off", "split", ENVIRONMENT], off)
        yield evaluations
        errors = CounterMetricFamily(
            "feature_flag_evaluation_errors",
            "Failed feature flag evaluations",
            labels=["flag", "error_type", "environment"],
        )
        errors.add_metric([FLAG, "provider_timeout", ENVIRONMENT], failed)
        yield errors
        info = GaugeMetricFamily(
            "feature_flag_config_info", "Config loaded", labels=["environment", "config_version"]
        )
        info.add_metric([ENVIRONMENT, "v1"], 1)
        yield info


@dataclass
class Live:
    prometheus: PrometheusProcess
    flags: Path
    state: Path


@pytest.fixture
def live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment: None
) -> Iterator[Live]:
    """The service ticking every 0.1 s on /metrics, this test's Prometheus scraping it
    every second until a window of samples is in, and the settings (environment
    variables) of a dashboard reading it, its flag at 25 %."""
    service = CounterOnlyService()
    registry = CollectorRegistry()
    registry.register(service)
    port = free_port()
    server, serving = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.1):
            service.tick()

    ticking = threading.Thread(target=run, name="counter-only-service", daemon=True)
    ticking.start()
    prometheus: PrometheusProcess | None = None
    try:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        prometheus = start_scraping_prometheus({"service": [f"127.0.0.1:{port}"]}, workdir)
        wait_for_samples(
            prometheus.url,
            f'feature_flag_evaluation_errors_total{{environment="{ENVIRONMENT}"}}',
            timedelta(seconds=WINDOW_SECONDS + 2),
        )
        flags = write_flags(tmp_path, {FLAG: PERCENTAGE})
        database = f"sqlite:///{tmp_path / 'metrics.db'}"
        open_database(database).dispose()  # `status` only reads: it never migrates
        for name, value in {
            "FLAGS_FILE": str(flags),
            "DATABASE_URL": database,
            "PROMETHEUS_URL": prometheus.url,
            "ENVIRONMENT": ENVIRONMENT,
            "STATE_DIR": str(tmp_path),
            "ROLES": json.dumps({OPERATOR.name: "operator"}),
            "APPROVAL_ENVIRONMENTS": "[]",
            "AUTOPILOT_WINDOW_SECONDS": str(WINDOW_SECONDS),
            "EVIDENCE_SLOT_SECONDS": "2",  # seconds of a live service make whole slots
        }.items():
            monkeypatch.setenv(f"ROLLOUT_{name}", value)
        yield Live(prometheus, flags, tmp_path)
    finally:
        if prometheus is not None:
            prometheus.stop()
        stop.set()
        server.shutdown()
        server.server_close()
        ticking.join(timeout=10)
        serving.join(timeout=10)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_every_view_says_20_percent_fail_and_the_autopilot_rolls_the_flag_back(
    live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    # the overview counts the error counter, as it did
    code, status = _cli(capsys, "status")
    assert code == 0 and status["source"] == "prometheus"
    (row,) = status["flags"]
    assert row["flag"] == FLAG
    assert row["error_rate"] == pytest.approx(0.2, abs=0.005)
    assert row["health"] == "unhealthy"
    assert row["reasons"][0].startswith("errors 20.0")

    # the advance guard sees the same errors, over its soak window: it fails
    code, advance = _cli(
        capsys, "advance", FLAG, "--reason", "ramp", "--actor", OPERATOR.name, "--dry-run"
    )
    assert code == 1 and advance["applied"] is False
    guard = {g["name"]: g for g in advance["guards"]}["error_rate"]
    assert guard["passed"] is False
    assert guard["value"] == pytest.approx(0.2, abs=0.005)
    total = float(guard["detail"].split(" of ")[1].split()[0])
    assert guard["detail"].startswith(
        f"{100 * guard['value']:.2f} % of {total:.0f} evaluations failed: proven above 1 %"
    )
    assert guard["detail"].startswith("20.0")

    # the autopilot, given a plan on the flag, rolls it back at its first tick, and the
    # webhook and the audit record carry the same error rate
    receiver = Receiver()
    runtime = open_runtime(
        load_settings(webhooks={"oncall": "json"}, webhook_urls={"oncall": receiver.url})
    )
    try:
        plan = set_plan(
            runtime.plans,
            runtime.audit,
            OPERATOR,
            runtime.backend.load(ENVIRONMENT),
            FLAG,
            PlanOptions(steps=(PERCENTAGE, 50.0), soak=timedelta(seconds=3), stop_at=50.0),
            now=datetime.now(UTC),
        )
        outcome = runtime.autopilot("counter-only").tick().outcome(FLAG)
        assert outcome is not None
        decision = outcome.decision
        assert (decision.move, decision.to) == (Move.ROLLBACK, 0.0)
        assert decision.gate is not None and decision.gate.name == "error_rate"
        assert decision.gate.value == pytest.approx(0.2, abs=0.005)
        assert "error_rate failed: 20.0" in decision.reason

        flag = runtime.backend.load(ENVIRONMENT).flag(FLAG)
        assert (flag.state, flag.percentage) == (FlagState.DISABLED, 0.0)
        stored = runtime.plans.get(ENVIRONMENT, FLAG)
        assert stored is not None and stored.id == plan.id
        assert stored.status is PlanStatus.PAUSED
        [record] = runtime.audit.entries(FLAG, environment=ENVIRONMENT, outcomes=(Outcome.APPLIED,))
        assert (record.actor, record.action) == ("autopilot", "rollback")
        snapshot = {g["name"]: g for g in record.guards}["error_rate"]
        assert snapshot["value"] == decision.gate.value

        assert receiver.wait_for(1)
        body = receiver.bodies[0]
        assert (body["event"], body["flag"], body["from"], body["to"]) == (
            "rollback",
            FLAG,
            PERCENTAGE,
            0.0,
        )
        assert body["gate"]["name"] == "error_rate"
        assert body["gate"]["value"] == decision.gate.value
        assert body["gate"]["detail"].startswith("20.0")
    finally:
        if isinstance(runtime.notifier, WebhookNotifier):
            runtime.notifier.close()
        receiver.stop()
