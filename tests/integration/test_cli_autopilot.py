"""Rollout plans and the autopilot from the terminal, on real parts: flags in YAML files,
plans, lease and audit in SQLite, guards measured on evaluation roll-ups written into
that database so that they pass (fresh, error-free, exposure exact, the instance on the
current config). Each test asserts what the commands print and what they wrote."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from app.autopilot.model import PlanStatus
from app.cli import main
from app.metrics_db.database import insert_rollups, report_instance
from app.metrics_db.records import EvaluationRollup
from app.runtime import open_runtime
from app.settings import load_settings
from tests.support.servers import free_port
from tests.support.state_files import writes_nothing

ME = pwd.getpwuid(os.getuid()).pw_name
PROD = "production"
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


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `rollout-dashboard ARGS` (argparse's exits too)."""
    try:
        with mock.patch("app.cli.arguments.os_account", return_value=ME):
            code = main(list(args))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code, out, err = cli(capsys, *args, "--json")
    assert out, err
    return code, json.loads(out)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment: None) -> Path:
    """Production flags in YAML, a SQLite database whose roll-ups make every gate pass;
    the OS user an operator, vic a viewer."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    for name, value in environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    healthy()
    return tmp_path


def environment(state: Path) -> dict[str, str]:
    return {
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_FLAGS_FILE": str(state / "feature_flags.yaml"),
        "ROLLOUT_DATABASE_URL": f"sqlite:///{state / 'metrics.db'}",
        "ROLLOUT_ROLES": json.dumps({ME: "operator", "vic": "viewer"}),
        "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",  # four eyes: its own test below
    }


def healthy() -> None:
    """Five minutes of error-free evaluations up to now for every production flag in
    rollout, split exactly at its percentage, and one instance on the current config."""
    runtime = open_runtime(load_settings())
    assert runtime.engine is not None
    config = runtime.config(PROD)
    now = datetime.now(UTC)
    rollups = []
    for key, flag in config.flags.items():
        for step in range(20):
            start = now - timedelta(seconds=1 + 15 * (step + 1))
            on, off = round(4 * flag.percentage), round(4 * (100 - flag.percentage))
            rollups.append(EvaluationRollup(start, 15, PROD, key, "on", "split", on))
            rollups.append(EvaluationRollup(start, 15, PROD, key, "off", "default", off))
    insert_rollups(runtime.engine, rollups)
    report_instance(runtime.engine, PROD, "web-1", config.loaded_version, now)
    runtime.engine.dispose()


def percentage(state: Path, flag: str) -> float:
    """The flag's production percentage as the override file has it (base if absent)."""
    override = state / "feature_flags_production.yaml"
    if override.exists():
        found = (yaml.safe_load(override.read_text()) or {}).get("flags", {}).get(flag)
        if found and "rollout" in found:
            return float(found["rollout"]["percentage"])
    return float(yaml.safe_load(FLAGS)["flags"][flag]["rollout"]["percentage"])


def set_alpha(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return cli(
        capsys,
        "plan",
        "set",
        "alpha",
        "--env",
        PROD,
        "--steps",
        "10,25,50,75",
        "--soak",
        "0s",
        "--stop-at",
        "75",
        "--gates",
        GATES,
        *extra,
    )


def audit_records(capsys: pytest.CaptureFixture[str], flag: str) -> list[dict[str, Any]]:
    code, document = cli_json(capsys, "audit", "--flag", flag)
    assert code == 0
    return list(reversed(document["records"]))


# -- plan set / show / pause / resume / abort -----------------------------------------


def test_a_dry_run_plan_says_so_where_it_is_shown(state, capsys):
    code, out, err = cli(
        capsys, "plan", "set", "alpha", "--env", PROD, "--steps", "10,25,50", "--soak", "30m",
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].endswith("alone up to 50 %, dry run: never acts")
    code, document = cli_json(capsys, "plan", "show", "alpha", "--env", PROD)
    [shown] = document["plans"]
    assert shown["dry_run"] is True


def test_a_plans_own_budget_is_checked_and_shown(state, capsys):
    args = ("plan", "set", "alpha", "--env", PROD, "--steps", "10,25", "--soak", "30m")
    code, out, err = cli(capsys, *args, "--budget", "2")
    assert code == 2 and "budget '2': false actions per plan-day, a number above 0" in err
    code, out, err = cli(capsys, *args, "--budget", "0.001")
    assert code == 0, err
    assert out.splitlines()[0].endswith("budget 0.001 false actions per plan-day")
    code, document = cli_json(capsys, "plan", "show", "alpha", "--env", PROD)
    [shown] = document["plans"]
    assert shown["budget"] == 0.001


def test_a_plan_round_trip_through_every_verb(state, capsys):
    code, out, err = cli(
        capsys,
        "plan",
        "set",
        "alpha",
        "--env",
        PROD,
        "--steps",
        "10,25,50",
        "--soak",
        "30m",
        "--on-failure",
        "kill",
        "--stop-at",
        "50",
        "--hours",
        "mon-fri 09-17 Europe/Berlin",
    )
    assert code == 0, err
    assert out.splitlines()[0] == (
        "plan set for alpha in production: 10 → 25 → 50 %, soak 30 min, on failure kill, "
        "alone up to 50 %, advances mon-fri 09:00-17:00 Europe/Berlin"
    )
    gates = "data_fresh, dependencies, error_rate, exposure, guardrail, propagation, soak_time"
    assert f"gates: {gates}" in out
    assert "active from rollout 25 %" in out

    code, out, _ = cli(capsys, "plan", "show", "--env", PROD)
    assert code == 4  # no autopilot leads: the plans are shown, nobody acts on them
    assert out.splitlines()[0] == (  # the words the pages use
        "WARNING: no autopilot is running: start rollout-dashboard autopilot"
    )
    assert "alpha (production): active, at 25 %" in out
    assert "next step  50 %" in out
    assert "decided    " in out and "plan set: the next tick looks at it" in out

    code, document = cli_json(capsys, "plan", "show", "alpha", "--env", PROD)
    assert code == 4
    assert document["controller"] is None
    (plan,) = document["plans"]
    assert (plan["flag"], plan["status"], plan["steps"], plan["soak_seconds"]) == (
        "alpha",
        "active",
        [10.0, 25.0, 50.0],
        1800.0,
    )
    assert (plan["on_failure"], plan["stop_at"], plan["percentage"]) == ("kill", 50.0, 25.0)
    assert (plan["next_step"], plan["next_step_waits_for_a_person"]) == (50.0, False)
    assert plan["allowed_hours"] == {
        "days": [0, 1, 2, 3, 4],
        "start": "09:00",
        "end": "17:00",
        "timezone": "Europe/Berlin",
    }
    assert plan["version"] == 1 and plan["events"] == []

    code, out, _ = cli(capsys, "plan", "pause", "alpha", "--env", PROD, "--reason", "lunch")
    assert (code, out) == (0, f"alpha in production: plan paused — paused by {ME}: lunch\n")
    code, out, _ = cli(capsys, "plan", "pause", "alpha", "--env", PROD)
    assert (code, out) == (
        0,
        "alpha in production: plan paused — already paused: nothing changed\n",
    )
    code, out, _ = cli(capsys, "plan", "show", "alpha", "--env", PROD)
    assert "alpha (production): paused, at 25 %" in out
    assert f"why        paused by {ME}: lunch" in out
    assert "next step  50 % once a person resumes the plan" in out

    code, out, _ = cli(capsys, "plan", "resume", "alpha", "--env", PROD, "--reason", "back")
    assert (code, out) == (0, f"alpha in production: plan active — resumed by {ME}: back\n")
    code, out, _ = cli(capsys, "plan", "abort", "alpha", "--env", PROD, "--reason", "enough")
    assert (code, out) == (0, f"alpha in production: plan aborted — aborted by {ME}: enough\n")

    code, out, err = cli(capsys, "plan", "resume", "alpha", "--env", PROD)
    assert (code, out) == (1, "")
    assert err.startswith("refused: the plan of alpha was aborted (aborted by")
    assert "set a new plan with `rollout-dashboard plan set`" in err

    records = audit_records(capsys, "alpha")
    assert [(r["actor"], r["action"], r["outcome"]) for r in records] == [
        (ME, "plan_set", "recorded"),
        (ME, "plan_pause", "recorded"),
        (ME, "plan_resume", "recorded"),
        (ME, "plan_abort", "recorded"),
    ]
    assert percentage(state, "alpha") == 25.0  # a plan never moves the flag by itself

    code, out, err = set_alpha(capsys)  # a new plan replaces the aborted one
    assert code == 0, err
    assert err == (  # set_alpha soaks 0 s: said, not refused (see plan_warnings)
        "warning: soak 0 s: each step is taken at the first tick its other gates pass, with "
        "no time at the step to watch it (write 30m to soak each step for 30 minutes)\n"
    )
    assert out.startswith("plan replaced for alpha in production: 10 → 25 → 50 → 75 %")
    code, document = cli_json(capsys, "plan", "show", "--env", PROD)
    assert [(p["flag"], p["status"], p["version"]) for p in document["plans"]] == [
        ("alpha", "active", 5)
    ]


def test_every_bad_value_is_named_and_nothing_is_written(state, capsys):
    unchanged = writes_nothing(state)
    code, out, err = cli(
        capsys,
        "plan",
        "set",
        "alpah",
        "--env",
        PROD,
        "--steps",
        "50,25",
        "--soak",
        "3 weeks",
        "--stop-at",
        "120",
        "--gates",
        "error_rate,vibes",
        "--on-failure",
        "panic",
        "--hours",
        "mon-fri 09-17 Mars/Olympus",
    )
    assert (code, out) == (2, "")
    problems = err.splitlines()
    assert problems == [
        "error: steps must rise, each once (1,5,25,50)",
        "error: soak '3 weeks': write it as 30m, 45s, 2h or 1h30m",
        "error: the highest step the autopilot may take alone must be within 0..100 %",
        "error: data_fresh, error_rate, soak_time are always gates: without them the "
        "autopilot would advance blind or unsoaked (missing: data_fresh, soak_time)",
        "error: unknown gates vibes (known: data_fresh, error_rate, soak_time, dependencies, "
        "exposure, propagation, guardrail, canary)",
        "error: on failure 'panic': one of rollback, kill, pause",
        "error: allowed hours: unknown time zone 'Mars/Olympus'",
        "error: unknown flag 'alpah' in production",
        "8 problem(s); nothing was written",
    ]
    unchanged()

    code, _, err = cli(capsys, "plan", "set", "alpha", "--steps", "1,5,x%", "--soak", "10d")
    assert code == 2
    assert "error: steps '1,5,x%': write them as 1,5,25,50" in err
    assert "error: the soak must be between 0 and 7 days" in err
    code, _, err = cli(capsys, "plan", "set", "alpha", "--steps", "0,200", "--soak", "1m")
    assert code == 2
    assert "error: step 0 % is not above 0 %: a step must serve someone" in err
    assert "error: step 200 % is above 100 %" in err
    code, _, err = cli(
        capsys, "plan", "set", "alpha", "--steps", "5", "--soak", "1m", "--hours", "x"
    )
    assert code == 2 and "allowed hours 'x': write them as 'mon-fri 09-17 Europe/Berlin'" in err
    code, _, err = cli(
        capsys, "plan", "set", "alpha", "--steps", "5", "--soak", "1m", "--gates", ","
    )
    assert code == 2 and "--gates names no gate" in err
    code, _, err = cli(capsys, "plan", "pause", "beta", "--env", PROD)
    assert code == 2 and "error: no rollout plan for 'beta' in production" in err
    code, _, err = cli(capsys, "plan", "show", "--env", "moon")
    assert code == 2 and "unknown environment 'moon'" in err
    unchanged()


def test_a_viewer_cannot_set_or_pause_a_plan(state, capsys):
    unchanged = writes_nothing(state)
    code, out, err = set_alpha(capsys, "--actor", "vic")
    assert (code, out) == (1, "")
    assert err == "refused: vic is viewer: set a rollout plan needs the operator role\n"
    unchanged()

    assert set_alpha(capsys)[0] == 0
    unchanged = writes_nothing(state)
    code, _, err = cli(capsys, "plan", "pause", "alpha", "--env", PROD, "--actor", "vic")
    assert code == 1
    assert err == "refused: vic is viewer: plan pause needs the operator role\n"
    unchanged()


def test_where_changes_need_a_second_person_another_operator_starts_the_plan(
    state, capsys, monkeypatch
):
    monkeypatch.setenv("ROLLOUT_APPROVAL_ENVIRONMENTS", json.dumps([PROD]))
    monkeypatch.setenv("ROLLOUT_ROLES", json.dumps({ME: "operator", "ivan": "operator"}))
    code, out, _ = set_alpha(capsys)
    assert code == 0
    assert "paused: waits for a second operator to start it" in out
    assert f"(set by {ME})" in out
    code, _, err = cli(capsys, "plan", "resume", "alpha", "--env", PROD)
    assert code == 1
    assert err == (
        f"refused: {ME} set this plan: in production another operator starts it "
        "(changes there need a second person)\n"
    )
    # another name from the same terminal account is the same pair of eyes
    code, _, err = cli(capsys, "plan", "resume", "alpha", "--env", PROD, "--actor", "ivan")
    assert code == 1
    assert err.startswith(f"refused: your OS account {ME} set this plan")
    stored = open_runtime(load_settings()).plans.get(PROD, "alpha")
    assert stored is not None and stored.status is PlanStatus.PAUSED


def test_a_plan_changed_since_the_version_named_is_a_conflict(state, capsys):
    assert set_alpha(capsys, "--if-version", "0")[0] == 0
    assert cli(capsys, "plan", "pause", "alpha", "--env", PROD)[0] == 0  # now version 2
    unchanged = writes_nothing(state)
    code, out, err = set_alpha(capsys, "--if-version", "1")
    assert (code, out) == (3, "")
    assert err.startswith(
        f"error: the plan changed meanwhile (it is at version 2, last changed by {ME}; "
        "you named version 1): nothing was written"
    )
    unchanged()
    assert set_alpha(capsys, "--if-version", "2")[0] == 0


# -- autopilot ---------------------------------------------------------------------------


def test_autopilot_once_advances_a_healthy_flag_as_autopilot(state, capsys):
    assert set_alpha(capsys)[0] == 0
    code, out, err = cli(capsys, "autopilot", "--once", "--holder", "cron")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("production alpha: advance [audit ")
    assert lines[0].endswith(
        "— advance 25 % → 50 %: every gate passed, soaked since before the history began"
    )
    # evaluations by reason, the error counter, instance versions, newest sample
    assert "tick: 1 plan(s): 1 advance; 4 metric queries" in lines[1]
    assert percentage(state, "alpha") == 50.0

    records = audit_records(capsys, "alpha")
    assert [(r["actor"], r["action"], r["outcome"]) for r in records] == [
        (ME, "plan_set", "recorded"),
        ("autopilot", "advance", "applied"),
    ]
    assert records[1]["to"] == {"state": "rollout", "percentage": 50.0}
    code, document = cli_json(capsys, "plan", "show", "alpha", "--env", PROD)
    (plan,) = document["plans"]
    assert (plan["percentage"], plan["next_step"]) == (50.0, 75.0)
    (event,) = plan["events"]
    assert (event["kind"], event["from_percentage"], event["to_percentage"]) == (
        "advance",
        25.0,
        50.0,
    )
    assert event["audit_id"] == records[1]["id"]
    # --once lets the lease go: a running controller takes over at once
    controller = document["controller"]
    assert controller["holder"] == "cron" and controller["ticks"] == 1
    assert datetime.fromisoformat(controller["expires_at"]) < datetime.now(UTC)

    code, out, _ = cli(capsys, "autopilot", "--once")  # the 25 % minutes are before the step
    assert code == 0
    assert "production alpha: wait — waited: no evaluations yet: the step began" in out
    assert "and its first whole 30 s slot has not ended" in out
    assert percentage(state, "alpha") == 50.0


def test_plan_show_exits_0_only_while_an_autopilot_leads(state, capsys):
    assert set_alpha(capsys)[0] == 0
    runtime = open_runtime(load_settings())
    now = datetime.now(UTC)
    assert runtime.plans.take_lease("autopilot", "web-7:12", now, timedelta(minutes=5), 30)
    runtime.plans.beat("autopilot", "web-7:12", now, 0.2)
    code, out, err = cli(capsys, "plan", "show", "--env", PROD)
    assert code == 0, err
    assert out.splitlines()[0].startswith("autopilot: leader web-7:12, last tick")
    code, document = cli_json(capsys, "plan", "show", "--env", PROD)
    assert code == 0 and document["controller"]["dead"] is False

    runtime.plans.release_lease("autopilot", "web-7:12", datetime.now(UTC))  # it stopped
    code, out, _ = cli(capsys, "plan", "show", "--env", PROD)
    assert code == 4
    assert out.startswith("WARNING: ")
    code, out, err = cli(capsys, "plan", "show", "--env", PROD, "--json")
    assert code == 4 and json.loads(out)["controller"]["dead"] is True
    assert err.startswith("warning: ")  # stdout holds the one document


def test_autopilot_once_while_another_process_leads_does_nothing(state, capsys):
    assert set_alpha(capsys)[0] == 0
    runtime = open_runtime(load_settings())
    assert runtime.plans.take_lease(
        "autopilot", "elsewhere:42", datetime.now(UTC), timedelta(minutes=5), 30
    )
    code, out, _ = cli(capsys, "autopilot", "--once")
    assert code == 3
    assert out == (
        "another autopilot leads (elsewhere:42): this process did nothing; it acts when that "
        "one stops or its lease runs out\n"
    )
    assert percentage(state, "alpha") == 25.0


def test_autopilot_without_the_metrics_database_exits_4(state, capsys, monkeypatch):
    closed = free_port()
    monkeypatch.setenv(
        "ROLLOUT_DATABASE_URL", f"postgresql+psycopg://rollout@127.0.0.1:{closed}/rollout"
    )
    code, out, err = cli(capsys, "autopilot", "--once")
    assert (code, out) == (4, "")
    assert "error: the autopilot needs the metrics database" in err
    code, _, err = cli(capsys, "plan", "show")
    assert code == 4 and "rollout plans need the metrics database, which is unavailable" in err


def test_autopilot_bad_interval_is_usage(state, capsys):
    code, _, err = cli(capsys, "autopilot", "--interval", "0")
    assert code == 2 and "must be 0.2 to 3600 seconds, got 0" in err


def test_sigterm_stops_the_autopilot_cleanly_and_releases_the_lease(state, capsys):
    assert set_alpha(capsys)[0] == 0
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "app.cli", "autopilot"),
            *("--interval", "0.5", "--holder", "one", "--verbose"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **environment(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # ends when the process does
            lines.append(line)
            if " tick: " in line:  # the first tick's summary: it decided
                break
        assert any("leading: this process acts on the plans" in line for line in lines), lines
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    if "production alpha: advance [audit " not in "".join(lines):
        plan = open_runtime(load_settings()).plans.get(PROD, "alpha")
        pytest.fail(f"no advance: {lines}; {plan.last_decision if plan else 'no plan'}")
    assert out.rstrip().endswith("autopilot one: stopped, lease released")
    heartbeat = open_runtime(load_settings()).plans.heartbeat("autopilot")
    assert heartbeat is not None and heartbeat.holder == "one" and heartbeat.ticks >= 1
    assert heartbeat.expires_at < datetime.now(UTC)
    assert percentage(state, "alpha") == 50.0
