"""The on-call commands load only what they use (a structural guard, no timing).

`rollout-dashboard --help` and `rollback` run in a fresh interpreter; afterwards none of
the heavy libraries of the pages and the metrics queries may be in `sys.modules`. A
rollback with Prometheus and the database down still rolls the flag back and keeps its
audit record in the local journal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.metrics_db.database import open_database
from tests.support.servers import free_port
from tests.support.webhook_receiver import Receiver

#: what a rollback never uses: each costs from 0.1 to 2 s of import time
HEAVY = ("pandas", "scipy", "alembic", "matplotlib", "prometheus_api_client", "streamlit")
#: `--help` builds a parser and nothing else
NOT_FOR_HELP = (*HEAVY, "sqlalchemy", "pydantic", "ruamel", "yaml", "prometheus_client")

PROBE = """
import json, os, sys
from app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump(
        {
            "code": code,
            "modules": sorted({m.split(".")[0] for m in sys.modules}),
            "app_modules": sorted(m for m in sys.modules if m.startswith("app.")),
        },
        out,
    )
"""

FLAGS = """version: "1.0.0"
flags:
  checkout_v2:
    state: rollout
    rollout: {strategy: percentage, percentage: 25}
    metadata: {phase: 1}
"""


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, set[str], str]:
    """Run the CLI in a fresh interpreter: its exit code, its top-level modules, stdout."""
    out = tmp_path / "probe.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "PROBE_OUT": str(out)},
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    result = json.loads(out.read_text())
    return int(result["code"]), set(result["modules"]), done.stdout


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The test process's environment without any ROLLOUT_* setting, flags in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / "feature_flags_production.yaml").write_text("flags: {}\n")
    env.update(
        ROLLOUT_STATE_DIR=str(tmp_path),
        ROLLOUT_FLAGS_FILE=str(tmp_path / "feature_flags.yaml"),
        ROLLOUT_DEMO="true",
    )
    return env


def test_help_loads_no_library(tmp_path: Path, clean_env: dict[str, str]) -> None:
    code, modules, stdout = _run(tmp_path, clean_env, "--help")
    assert code == 0
    assert "rollback" in stdout
    assert modules.isdisjoint(NOT_FOR_HELP), sorted(modules & set(NOT_FOR_HELP))


def test_rollback_with_every_source_down(tmp_path: Path, clean_env: dict[str, str]) -> None:
    closed = free_port()
    env = {
        **clean_env,
        "ROLLOUT_PROMETHEUS_URL": f"http://127.0.0.1:{closed}",
        "ROLLOUT_DATABASE_URL": f"postgresql+psycopg://rollout@127.0.0.1:{closed}/rollout",
    }
    code, modules, stdout = _run(
        tmp_path, env, "rollback", "checkout_v2", "--reason", "errors up", "--actor", "olga"
    )
    assert code == 0
    assert "checkout_v2: rollout 25 % → rollout 10 %" in stdout
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
    override = yaml.safe_load((tmp_path / "feature_flags_production.yaml").read_text())
    assert override["flags"]["checkout_v2"]["rollout"]["percentage"] == 10
    journal = [
        json.loads(line) for line in (tmp_path / "audit-journal.jsonl").read_text().splitlines()
    ]
    assert [(r["type"], r.get("outcome")) for r in journal] == [
        ("record", "pending"),
        ("outcome", "applied"),
    ]
    assert journal[0]["actor"] == "olga" and journal[0]["to_percentage"] == 10.0


def test_rollback_that_notifies_a_webhook(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """With a webhook and manual notifications on, the rollback still loads no heavy
    library (the notifier and the message bodies are light); it hands the delivery over
    and the webhook hears it from the autopilot's next tick."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    open_database(url).dispose()
    receiver = Receiver()
    try:
        env = {
            **clean_env,
            "ROLLOUT_DATABASE_URL": url,
            "ROLLOUT_WEBHOOKS": "oncall=json",
            "ROLLOUT_WEBHOOK_URL_ONCALL": receiver.url,
            "ROLLOUT_NOTIFY_MANUAL_ACTIONS": "true",
        }
        code, modules, stdout = _run(
            tmp_path, env, "rollback", "checkout_v2", "--reason", "errors up", "--actor", "olga"
        )
        assert code == 0
        assert "checkout_v2: rollout 25 % → rollout 10 %" in stdout
        assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
        assert receiver.bodies == []  # handed over: the command never waits for a receiver
        ticked = subprocess.run(
            [sys.executable, "-m", "app.cli", "autopilot", "--once"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ticked.returncode == 0, ticked.stderr
        assert receiver.wait_for(1)
        [body] = receiver.bodies
        assert (body["event"], body["flag"], body["from"], body["to"]) == (
            "manual:rollback",
            "checkout_v2",
            25.0,
            10.0,
        )
    finally:
        receiver.stop()


def test_rollback_on_a_migrated_database(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """The database at head is opened without Alembic; the record lands in it."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    open_database(url).dispose()
    env = {**clean_env, "ROLLOUT_DATABASE_URL": url}
    code, modules, _ = _run(tmp_path, env, "rollback", "checkout_v2", "--kill", "--reason", "x")
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
    assert not (tmp_path / "audit-journal.jsonl").exists()
    code, _, stdout = _run(tmp_path, env, "audit", "--json")
    assert code == 0
    (record,) = json.loads(stdout)["records"]
    assert (record["flag"], record["to"], record["outcome"]) == (
        "checkout_v2",
        {"state": "disabled", "percentage": 0.0},
        "applied",
    )


def test_help_and_rollback_never_load_the_autopilot(tmp_path: Path, clean_env: dict[str, str]):
    """The plan commands are registered, but the autopilot is imported only by them."""
    out = tmp_path / "probe.json"
    env = {**clean_env, "ROLLOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}"}
    for args in (["--help"], ["rollback", "checkout_v2", "--reason", "errors up"]):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**env, "PROBE_OUT": str(out)},
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        result = json.loads(out.read_text())
        assert result["code"] == 0
        loaded = {m for m in result["app_modules"] if m.startswith("app.autopilot")}
        assert not loaded, (args, sorted(loaded))
        assert "app.cli.autopilot" in result["app_modules"]  # registered: `plan --help` works
