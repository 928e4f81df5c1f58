"""The processes watched as a platform team would: a real Prometheus scrapes a running
autopilot's metrics port and finds what it did; every line the autopilot and `serve`
write with ROLLOUT_LOG_FORMAT=json is one JSON object; both print their configuration at
start with the database password masked; `serve` says when PostgreSQL goes away and
when it is back. Real parts: PostgreSQL (through a TCP forwarder the test can cut),
Prometheus, `rollout-dashboard` processes, a webhook receiver."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.metrics_db.database import insert_rollups, open_database, report_instance
from app.metrics_db.records import EvaluationRollup
from app.metrics_db.schema import WebhookDeliveryRow
from app.runtime import open_runtime
from app.settings import load_settings
from tests.conftest import fresh_postgres_database
from tests.support.cli_process import cli_environment
from tests.support.cli_process import run_cli as run_command
from tests.support.openfeature import _query, start_scraping_prometheus
from tests.support.servers import free_port, start
from tests.support.tcp_proxy import TcpProxy
from tests.support.webhook_receiver import TOKEN, Receiver

pytestmark = [pytest.mark.prometheus, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
ME = pwd.getpwuid(os.getuid()).pw_name
PROD = "production"
#: PostgreSQL here trusts local connections: any password is accepted, none may be shown
PASSWORD = "pw-h23-Sup3rSecret"
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
  beta:
    state: rollout
    rollout: {percentage: 10}
"""
GATES = "data_fresh,error_rate,soak_time,exposure,propagation"


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database, its URL carrying a password."""
    with fresh_postgres_database("rollout_selfmon") as url:
        yield url.replace("postgres@", f"postgres:{PASSWORD}@")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


def settings_env(state: Path, database_url: str, **more: str) -> dict[str, str]:
    return cli_environment(state, database_url, ME, ROLLOUT_LOG_FORMAT="json", **more)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`cli_process.run_cli`, which must succeed."""
    done = run_command(env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def healthy(state: Path, database_url: str) -> None:
    """Five minutes of error-free evaluations up to now for every production flag, split
    exactly at its percentage, and one instance on the current config."""
    runtime = open_runtime(
        load_settings(
            state_dir=state, flags_file=state / "feature_flags.yaml", database_url=database_url
        )
    )
    assert runtime.engine is not None
    config = runtime.config(PROD)
    now = datetime.now(UTC)
    rollups = []
    for key, flag in config.flags.items():
        for step in range(20):
            start_at = now - timedelta(seconds=1 + 15 * (step + 1))
            on, off = round(4 * flag.percentage), round(4 * (100 - flag.percentage))
            rollups.append(EvaluationRollup(start_at, 15, PROD, key, "on", "split", on))
            rollups.append(EvaluationRollup(start_at, 15, PROD, key, "off", "default", off))
    insert_rollups(runtime.engine, rollups)
    report_instance(runtime.engine, PROD, "web-1", config.loaded_version, now)
    runtime.engine.dispose()


def value(prometheus: str, promql: str) -> float | None:
    result = _query(prometheus, promql)
    return float(result[0]["value"][1]) if result else None


def wait_until(prometheus: str, promql: str, timeout: float = 120) -> bool:
    """Whether `promql` rose above 0 within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = value(prometheus, promql)
        if found is not None and found > 0:
            return True
        time.sleep(0.5)
    return False


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object (fails on the first that is not one)."""
    parsed = []
    for line in text.splitlines():
        document = json.loads(line)
        assert isinstance(document, dict), line
        assert {"time", "level", "event"} <= document.keys(), line
        parsed.append(document)
    return parsed


def test_prometheus_scrapes_what_a_running_autopilot_did(
    tmp_path: Path, database: str, receiver: Receiver
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    env = settings_env(
        tmp_path,
        database,
        ROLLOUT_WEBHOOKS="oncall=json",
        ROLLOUT_WEBHOOK_URL_ONCALL=receiver.url,
        ROLLOUT_NOTIFY_MANUAL_ACTIONS="true",
    )
    plan = ("--env", PROD, "--soak", "0s", "--stop-at", "75", "--gates", GATES)
    run_cli(env, "plan", "set", "alpha", "--steps", "10,25,50,75", *plan)
    run_cli(env, "plan", "set", "beta", "--steps", "10,50", *plan)
    run_cli(env, "plan", "pause", "beta", "--env", PROD, "--reason", "looking")
    # a person's rollback from the terminal: its notification is handed to the autopilot
    run_cli(env, "rollback", "beta", "--env", PROD, "--to", "5", "--reason", "x", "--actor", ME)

    healthy(tmp_path, database)  # fresh data for the first tick
    port = free_port()
    autopilot = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "autopilot", "--interval", "0.5", "--holder", "h23"],
        cwd=ROOT,
        env={**env, "ROLLOUT_AUTOPILOT_METRICS_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prometheus = None
    try:
        prometheus = start_scraping_prometheus({"autopilot": [f"127.0.0.1:{port}"]}, tmp_path)
        url = prometheus.url
        seen = [
            wait_until(url, 'rollout_autopilot_actions_total{action="advance",result="applied"}'),
            # the advance's notification and the one the terminal handed over
            wait_until(url, 'rollout_autopilot_webhook_deliveries_total{outcome="delivered"} >= 2'),
        ]
        time.sleep(2)  # a few more ticks and scrapes
        ticks = value(url, 'rollout_autopilot_ticks_total{outcome="leader"}')
        leader = value(url, "rollout_autopilot_leader")
        advances = value(url, 'rollout_autopilot_decisions_total{move="advance"}')
        applied = value(url, 'rollout_autopilot_actions_total{action="advance",result="applied"}')
        refused = value(url, 'sum(rollout_autopilot_actions_total{result!="applied"})')
        delivered = value(
            url, 'rollout_autopilot_webhook_deliveries_total{webhook="oncall",outcome="delivered"}'
        )
        active = value(url, 'rollout_autopilot_plans{status="active"}')
        paused = value(url, 'rollout_autopilot_plans{status="paused"}')
        last_tick = value(url, "rollout_autopilot_last_leader_tick_timestamp_seconds")
        durations = value(url, "rollout_autopilot_tick_duration_seconds_count")
    finally:
        if prometheus is not None:
            prometheus.stop()
        autopilot.send_signal(signal.SIGTERM)
        out, err = autopilot.communicate(timeout=60)
    assert autopilot.returncode == 0, err
    assert seen == [True, True], out + err

    runtime = open_runtime(
        load_settings(
            state_dir=tmp_path, flags_file=tmp_path / "feature_flags.yaml", database_url=database
        )
    )
    by_autopilot = [
        e for e in runtime.audit.entries() if e.actor == "autopilot" and e.outcome == "applied"
    ]
    assert runtime.engine is not None
    with runtime.engine.connect() as connection:
        rows = connection.execute(select(WebhookDeliveryRow.status)).all()
    runtime.engine.dispose()
    assert ticks is not None and ticks > 0
    assert leader == 1
    assert advances is not None and advances >= 1
    assert applied == len(by_autopilot) == 1  # 25 → 50 %; the exposure gate then waits
    assert (by_autopilot[0].flag, by_autopilot[0].to_percentage) == ("alpha", 50.0)
    assert refused is None  # no series: nothing refused or failed
    assert delivered == len(receiver.bodies) == 2
    assert sorted(body["event"] for body in receiver.bodies) == ["advance", "manual:rollback"]
    assert [tuple(r) for r in rows] == [("delivered",), ("delivered",)]
    assert (active, paused) == (1, 1)
    assert last_tick is not None and abs(last_tick - time.time()) < 120
    assert durations is not None and durations >= ticks

    # every line the autopilot wrote is one JSON object; the advance carries its fields
    lines = json_lines(out) + json_lines(err)
    (advance,) = [line for line in lines if line.get("move") == "advance"]
    assert (advance["flag"], advance["environment"], advance["actor"]) == (
        "alpha",
        PROD,
        "autopilot",
    )
    assert advance["audit_id"] == by_autopilot[0].id
    configuration = {line["setting"]: line["value"] for line in lines if "setting" in line}
    assert configuration["database"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    assert configuration["flag backend"] == f"yaml {tmp_path / 'feature_flags.yaml'}"
    assert configuration["approval environments"] == "none"
    assert configuration["webhooks"] == "oncall (json)"
    assert configuration["autopilot"].startswith("one tick every 0.5 s")
    assert PASSWORD not in out + err
    assert TOKEN not in out + err


def test_serve_logs_json_and_says_when_the_database_goes_away_and_comes_back(
    tmp_path: Path, database: str
) -> None:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    open_database(database).dispose()  # migrated, as an installed dashboard's is
    proxy = TcpProxy(("127.0.0.1", 5432))
    through = database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    port = free_port()
    log = tmp_path / "serve.log"
    server = start(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        settings_env(tmp_path, through, ROLLOUT_REFRESH_SECONDS="2"),
        port,
        log,
    )
    try:
        proxy.cut()
        said = _wait_for_line(log, "metrics database unavailable")
        assert said["level"] == "error"
        proxy.restore()
        back = _wait_for_line(log, "metrics database available again after")
        assert back["level"] == "warning"
    finally:
        server.stop()
        proxy.stop()
    text = log.read_text()
    lines = json_lines(text)  # Streamlit's own lines included
    configuration = {line["setting"]: line["value"] for line in lines if "setting" in line}
    assert configuration["database"] == through.replace(PASSWORD, "***")
    assert configuration["metrics source"].startswith("the metrics database's roll-ups")
    assert configuration["approval environments"] == "none"
    assert PASSWORD not in text
    assert "Traceback" not in text


def _wait_for_line(log: Path, words: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if words in line:
                found: dict[str, Any] = json.loads(line)
                return found
        time.sleep(0.3)
    pytest.fail(f"serve never logged {words!r}:\n{log.read_text()[-3000:]}")
