"""Four-eyes approval from the terminal, as on-call uses it: alice asks for an advance in
production, the person at this terminal (the OS user, an operator) approves it.

Real parts only: flags in YAML files and in the `sql` backend, change requests and the
audit in SQLite, guards measured on evaluation roll-ups written into that database so
that they pass (fresh, healthy, exposure exact, every instance on the current config).
Each test asserts the flag as `status` shows it and the audit as `audit` prints it.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import create_engine, update

from app.cli import main
from app.metrics_db.database import insert_rollups, report_instance
from app.metrics_db.records import EvaluationRollup
from app.metrics_db.schema import ChangeRequestRow
from app.runtime import open_runtime
from app.settings import load_settings
from tests.support.state_files import writes_nothing

#: whoever runs the tests: the CLI acts as this OS user where `--actor` is not allowed
ME = pwd.getpwuid(os.getuid()).pw_name
PROD, STAGING = "production", "staging"

FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
  beta:
    state: rollout
    rollout: {percentage: 10}
  rollback_mechanism:
    state: enabled
"""
CREATED = "change request #{id} created: waits for another operator's approval "
APPROVE_HINT = "(rollout-dashboard approve {id})"
SECOND_PAIR = "a self-declared name is not a second pair of eyes"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `rollout-dashboard ARGS` (argparse's exits too).

    An advance with `--actor alice` is typed at alice's own terminal: her OS account is
    `alice`. One test process cannot be two OS accounts, so the account is the one thing
    simulated here; `test_one_account_is_one_pair_of_eyes_whatever_name_it_declares` runs
    both steps from this process's real account."""
    account = ME
    if args and args[0] in ("advance", "request") and "--actor" in args:
        account = args[args.index("--actor") + 1]
    try:
        with mock.patch("app.cli.arguments.os_account", return_value=account):
            code = main(list(args))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code, out, _ = cli(capsys, *args, "--json")
    return code, json.loads(out)


@pytest.fixture(params=["yaml", "sql"])
def state(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_rollout_environment: None,
) -> Path:
    """Flags for production and staging, a SQLite database whose roll-ups make every
    advance guard pass, alice and the OS user operators; approval in production (the
    default)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    (tmp_path / "feature_flags_staging.yaml").write_text("flags: {}\n")
    for name, value in {
        "ROLLOUT_STATE_DIR": str(tmp_path),
        "ROLLOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}",
        "ROLLOUT_FLAG_BACKEND": request.param,
        "ROLLOUT_MIN_SOAK_MINUTES": "0",
        "ROLLOUT_ROLES": json.dumps({"alice": "operator", ME: "operator"}),
    }.items():
        monkeypatch.setenv(name, value)
    healthy(tmp_path)
    return tmp_path


def healthy(state: Path) -> None:
    """Five minutes of error-free evaluations up to now for every production flag in
    rollout, split exactly at its percentage, and one instance on the current config."""
    runtime = open_runtime(load_settings())
    assert runtime.engine is not None
    config = runtime.config(PROD)
    now = datetime.now(UTC)
    rollups = []
    for key, flag in config.flags.items():
        if str(flag.state) != "rollout":
            continue
        for step in range(20):
            start = now - timedelta(seconds=1 + 15 * (step + 1))
            on, off = round(4 * flag.percentage), round(4 * (100 - flag.percentage))
            rollups.append(EvaluationRollup(start, 15, PROD, key, "on", "split", on))
            rollups.append(EvaluationRollup(start, 15, PROD, key, "off", "default", off))
    insert_rollups(runtime.engine, rollups)
    report_instance(runtime.engine, PROD, "web-1", config.loaded_version, now)
    runtime.engine.dispose()


def percentage(capsys: pytest.CaptureFixture[str], flag: str, environment: str = PROD) -> float:
    """The flag's percentage as `status --json` shows it."""
    code, document = cli_json(capsys, "status", "--env", environment)
    assert code == 0
    return float({f["flag"]: f for f in document["flags"]}[flag]["percentage"])


def steps(capsys: pytest.CaptureFixture[str], flag: str) -> list[tuple[str, str]]:
    """(actor, outcome) of every audit record of `flag`, oldest first."""
    code, document = cli_json(capsys, "audit", "--flag", flag)
    assert code == 0
    return [(r["actor"], r["outcome"]) for r in reversed(document["records"])]


def ask(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """An advance that becomes a change request (exit 5): its id."""
    code, out, err = cli(capsys, "advance", *args)
    assert code == 5, out + err
    change_id = out.split("change request #", 1)[1].split(" ", 1)[0]
    assert CREATED.format(id=change_id) + APPROVE_HINT.format(id=change_id) in out
    return change_id


# -- asking and approving ---------------------------------------------------------------


def test_alice_asks_the_os_user_approves_and_the_audit_tells_it(state, capsys):
    code, out, _ = cli(
        capsys, "advance", "alpha", "--reason", "steady for an hour", "--actor", "alice"
    )
    assert code == 5
    assert "alpha: rollout 25 % → rollout 50 %" in out
    assert "PASS data_fresh" in out and "PASS exposure" in out and "FAIL" not in out
    assert CREATED.format(id=1) + APPROVE_HINT.format(id=1) in out
    assert percentage(capsys, "alpha") == 25.0  # nothing applied yet

    code, out, _ = cli(capsys, "requests")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["id", "env", "change", "requester", "age", "expires", "in", "reason"]
    assert row.startswith("1 ") and " production " in row and " alice " in row
    assert "alpha: rollout 25 % → rollout 50 %" in row and "23 h 59 min" in row
    assert row.endswith("steady for an hour")

    code, out, err = cli(capsys, "approve", "1", "--comment", "dashboards look fine")
    assert code == 0, err
    assert out.startswith("#1 approved and applied\n")
    assert "alpha: rollout 25 % → rollout 50 %" in out and "applied (audit " in out
    assert percentage(capsys, "alpha") == 50.0
    assert steps(capsys, "alpha") == [("alice", "requested"), (ME, "approved"), (ME, "applied")]
    code, out, _ = cli(capsys, "audit", "--flag", "alpha")
    assert "request #1 by alice: steady for an hour" in out
    assert "request #1: dashboards look fine" in out

    assert cli(capsys, "requests")[1] == "no pending change requests\n"
    code, document = cli_json(capsys, "requests", "--all")
    (done,) = document["requests"]
    assert (done["status"], done["decided_by"], done["comment"]) == (
        "applied",
        ME,
        "dashboards look fine",
    )


def test_the_same_approval_twice_applies_once(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    assert cli(capsys, "approve", "1")[0] == 0
    code, out, err = cli(capsys, "approve", "1")
    assert code == 0, err
    assert out.startswith(f"#1 is already applied by {ME}")
    assert percentage(capsys, "alpha") == 50.0
    assert [outcome for _, outcome in steps(capsys, "alpha")] == [
        "requested",
        "approved",
        "applied",
    ]


def test_nobody_approves_their_own_request(state, capsys):
    code, out, _ = cli(capsys, "request", "advance", "alpha", "--reason", "mine")
    assert code == 5 and CREATED.format(id=1) in out
    code, out, err = cli(capsys, "approve", "1")
    assert code == 1
    assert err == "error: #1 is your own request: another operator must approve it\n"
    assert percentage(capsys, "alpha") == 25.0
    code, document = cli_json(capsys, "requests")
    assert [(r["id"], r["status"], r["requester"]) for r in document["requests"]] == [
        ("1", "pending", ME)
    ]
    assert steps(capsys, "alpha") == [(ME, "requested")]
    # what the requester may do: withdraw it
    code, out, _ = cli(capsys, "cancel", "1")
    assert code == 0 and out.startswith("#1 cancelled")
    assert steps(capsys, "alpha") == [(ME, "requested"), (ME, "cancelled")]


def test_one_account_is_one_pair_of_eyes_whatever_name_it_declares(state, capsys):
    """The same OS account asks as alice, then approves as itself: refused."""
    assert cli(capsys, "advance", "alpha", "--reason", "x", "--actor", "alice")[0] == 5
    with mock.patch("app.cli.arguments.os_account", return_value=ME):
        code = main(["request", "advance", "beta", "--reason", "mine", "--actor", "alice"])
    assert code == 5
    capsys.readouterr()
    code, _, err = cli(capsys, "approve", "2")
    assert code == 1
    assert err == (
        f"error: #2 was asked from your OS account {ME} (as alice): another person must "
        "approve it from their own\n"
    )
    code, _, err = cli(capsys, "reject", "2", "--reason", "no")
    assert code == 1 and "your own request" in err
    assert percentage(capsys, "beta") == 10.0
    assert cli(capsys, "approve", "1")[0] == 0  # alice's own terminal asked for #1
    assert percentage(capsys, "alpha") == 50.0


def test_logname_does_not_change_who_approves(state, capsys, monkeypatch):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    code, _, err = cli(capsys, "approve", "1")
    assert code == 0, err
    assert steps(capsys, "alpha")[1:] == [(ME, "approved"), (ME, "applied")]


def test_rejecting_or_cancelling_what_one_approved_is_refused_not_done(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    assert cli(capsys, "approve", "1")[0] == 0
    code, _, err = cli(capsys, "reject", "1", "--reason", "changed my mind")
    assert code == 1 and f"already applied by {ME}" in err
    code, _, err = cli(capsys, "cancel", "1")
    assert code == 1


def test_only_the_requester_cancels(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    code, _, err = cli(capsys, "cancel", "1")
    assert code == 1
    assert err == "error: #1 is alice's request: only they can cancel it (reject it instead)\n"
    code, out, _ = cli(capsys, "cancel", "1", "--actor", "alice")
    assert (code, out) == (0, "#1 cancelled\nalpha: rollout 25 % → rollout 50 %\n")
    assert steps(capsys, "alpha") == [("alice", "requested"), ("alice", "cancelled")]


def test_the_same_idempotency_key_asks_once(state, capsys):
    args = ["alpha", "--reason", "steady", "--actor", "alice", "--idempotency-key", "k-1"]
    ask(capsys, *args)
    code, out, _ = cli(capsys, "advance", *args)
    assert code == 5
    assert out.endswith("change request #1 was made with this idempotency key: pending\n")
    code, document = cli_json(capsys, "requests")
    assert [r["id"] for r in document["requests"]] == ["1"]
    assert steps(capsys, "alpha") == [("alice", "requested")]


ACTOR_SPELLINGS = {
    "--actor bob": ["--actor", "bob"],
    "--actor=bob": ["--actor=bob"],
    "--act bob": ["--act", "bob"],
    "--a=bob": ["--a=bob"],
    "--acto": ["--acto"],
    "--actor and --json": ["--actor", "bob", "--json"],
}


@pytest.mark.parametrize("spelling", ACTOR_SPELLINGS.values(), ids=ACTOR_SPELLINGS.keys())
def test_a_self_declared_approver_or_rejecter_is_refused_and_nothing_is_written(
    state, capsys, spelling
):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    untouched = writes_nothing(state)
    for command in (
        ["approve", "1", *spelling],
        ["approve", *spelling, "1"],
        ["reject", "1", "--reason", "no", *spelling],
        ["reject", *spelling, "1", "--reason", "no"],
    ):
        code, out, err = cli(capsys, *command)
        assert code == 2, command
        assert SECOND_PAIR in err and err.count("\n") == 1
        assert out == ""
    untouched()
    code, document = cli_json(capsys, "requests")
    assert [r["status"] for r in document["requests"]] == ["pending"]


def test_reject_needs_a_reason_and_leaves_the_flag(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    untouched = writes_nothing(state)
    code, _, err = cli(capsys, "reject", "1")
    assert code == 2 and "--reason" in err
    code, _, err = cli(capsys, "reject", "1", "--reason", "   ")
    assert (code, err) == (2, "error: why reject: a reason is required\n")
    untouched()
    code, out, _ = cli(capsys, "reject", "#1", "--reason", "wait for the Monday traffic")
    assert code == 0 and out.startswith("#1 rejected\nalpha: rollout 25 % → rollout 50 %")
    code, _, err = cli(capsys, "approve", "1")
    assert code == 1 and f"#1 is already rejected by {ME}" in err
    assert percentage(capsys, "alpha") == 25.0
    code, out, _ = cli(capsys, "requests", "--all")
    assert f"rejected by {ME}" in out.splitlines()[1]


def test_an_expired_request_is_refused(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    engine = create_engine(f"sqlite:///{state / 'metrics.db'}")
    with engine.begin() as connection:  # a day has passed
        past = datetime.now(UTC) - timedelta(minutes=1)
        connection.execute(update(ChangeRequestRow).values(expires_at=past))
    engine.dispose()
    code, out, err = cli(capsys, "approve", "1")
    assert code == 1 and out == ""
    assert err.startswith("error: #1 expired at ") and "ask for a fresh request" in err
    assert percentage(capsys, "alpha") == 25.0
    assert steps(capsys, "alpha") == [
        ("alice", "requested"),
        ("rollout-dashboard (expiry)", "expired"),
    ]
    assert cli(capsys, "requests")[1] == "no pending change requests\n"


def test_an_expiry_setting_of_seconds_expires_the_listing(state, capsys, monkeypatch):
    monkeypatch.setenv("ROLLOUT_REQUEST_EXPIRY_HOURS", "0.000001")  # 3.6 ms
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    code, document = cli_json(capsys, "requests", "--all")
    assert code == 0
    assert [r["status"] for r in document["requests"]] == ["expired"]
    assert cli(capsys, "approve", "1")[0] == 1
    assert percentage(capsys, "alpha") == 25.0


def test_a_flag_changed_since_the_request_is_a_conflict(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    assert cli(capsys, "rollback", "alpha", "--reason", "errors", "--actor", "alice")[0] == 0
    code, _, err = cli(capsys, "approve", "1")
    assert code == 3
    assert "alpha is now rollout 10 %: alice" in err and "fresh request" in err
    assert percentage(capsys, "alpha") == 10.0


# -- what never waits, and where nothing needs asking ---------------------------------


def test_rollback_kill_and_emergency_rollback_apply_at_once_in_production(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    code, out, _ = cli(capsys, "rollback", "alpha", "--reason", "errors up")
    assert code == 0 and "applied (audit" in out and "change request" not in out
    assert cli(capsys, "rollback", "beta", "--kill", "--reason", "errors up")[0] == 0
    assert percentage(capsys, "alpha") == 10.0 and percentage(capsys, "beta") == 0.0
    code, document = cli_json(capsys, "rollback", "--all-experimental", "--reason", "incident")
    assert code == 0 and document["applied"] is True and "change_request" not in document
    assert document["flag"] == "alpha"  # beta is killed, rollback_mechanism a safety flag
    assert percentage(capsys, "alpha") == 0.0
    code, document = cli_json(capsys, "requests", "--all")
    assert [r["action"] for r in document["requests"]] == ["advance"]  # alice's only


def test_request_advance_where_no_approval_is_needed_is_refused(state, capsys):
    untouched = writes_nothing(state)
    code, out, err = cli(capsys, "request", "advance", "alpha", "--env", STAGING, "--reason", "x")
    assert (code, out) == (2, "")
    assert err == (
        "error: staging needs no approval: use `rollout-dashboard advance` "
        "(nothing was requested or applied)\n"
    )
    untouched()


def test_dry_run_says_it_would_wait_and_writes_nothing(state, capsys):
    untouched = writes_nothing(state)
    for command in (["advance"], ["request", "advance"]):
        code, out, _ = cli(capsys, *command, "alpha", "--reason", "x", "--dry-run")
        assert code == 0
        assert out.splitlines()[0] == "alpha: rollout 25 % → rollout 50 %"
        assert out.endswith(
            "dry run: nothing written\n"
            "in production this waits for another operator's approval: "
            "it would become a change request\n"
        )
    untouched()


# -- JSON ----------------------------------------------------------------------------


def test_requests_json_lists_exactly_what_was_asked(state, capsys):
    code, asked = cli_json(
        capsys, "advance", "alpha", "--to", "40", "--reason", "half way", "--actor", "alice"
    )
    assert code == 5 and asked["applied"] is False
    assert asked["change_request"]["id"] == "1" and asked["change_request"]["status"] == "pending"
    ask(capsys, "beta", "--reason", "next step\nafter the review")
    code, document = cli_json(capsys, "requests")
    assert code == 0
    newest, oldest = document["requests"]
    assert oldest == asked["change_request"]
    assert (newest["id"], newest["requester"], newest["reason"]) == (
        "2",
        ME,
        "next step\nafter the review",
    )
    assert newest["changes"] == [
        {
            "flag": "beta",
            "from_state": "rollout",
            "from_percentage": 10.0,
            "to_state": "rollout",
            "to_percentage": 25.0,
        }
    ]
    assert oldest["changes"][0]["to_percentage"] == 40.0
    assert [g["name"] for g in newest["guards"]] == [
        "data_fresh",
        "error_rate",
        "soak_time",
        "dependencies",
        "exposure",
        "propagation",
    ]
    assert all(g["passed"] for g in newest["guards"])
    for request in document["requests"]:
        created = datetime.fromisoformat(request["created_at"])
        assert datetime.fromisoformat(request["expires_at"]) - created == timedelta(hours=24)
    assert cli_json(capsys, "requests", "--env", PROD)[1] == document
    assert cli_json(capsys, "requests", "--env", STAGING)[1] == {"requests": []}
    code, out, err = cli(capsys, "requests", "--env", "nowhere")
    assert (code, out, err) == (2, "", "error: unknown environment 'nowhere'\n")


def test_decisions_in_json(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    ask(capsys, "beta", "--reason", "mine")
    code, decision = cli_json(capsys, "approve", "1")
    assert code == 0
    assert (decision["exit_code"], decision["ok"], decision["message"]) == (
        0,
        True,
        "#1 approved and applied",
    )
    assert decision["change_request"]["status"] == "applied"
    assert decision["result"]["applied"] is True
    assert decision["result"]["to"] == {"state": "rollout", "percentage": 50.0}
    code, refused = cli_json(capsys, "approve", "2")
    assert code == 1 and refused["ok"] is False and refused["result"] is None
    assert refused["message"] == "#2 is your own request: another operator must approve it"
    assert refused["change_request"]["status"] == "pending"
    code, missing = cli_json(capsys, "cancel", "42")
    assert code == 2 and missing["change_request"] is None


# -- bad input -----------------------------------------------------------------------

BAD_IDS = {
    "letters": "abc",
    "Arabic-Indic digits": "١٢",
    "full-width digits": "１２",
    "superscript": "²",
    "40 digits": "9" * 40,
    "negative": "-1",
    "terminal escape": "1\x1b[2J",
    "empty": "",
    "SQL": "1 OR 1=1",
}


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_bad_id_is_one_clear_line_and_writes_nothing(state, capsys, bad):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    untouched = writes_nothing(state)
    for command in (["approve", bad], ["reject", bad, "--reason", "no"], ["cancel", bad]):
        code, out, err = cli(capsys, *command)
        assert (code, out) == (2, ""), command
        assert err.startswith("error: not a change request id: '") and err.count("\n") == 1
        assert "\x1b" not in err
    untouched()


def test_an_unknown_id_and_hostile_comments_write_nothing(state, capsys):
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    untouched = writes_nothing(state)
    code, _, err = cli(capsys, "approve", "999999")
    assert (code, err) == (2, "error: no change request #'999999'\n")
    code, _, err = cli(capsys, "approve", "1", "--comment", "fine\x1b[2Jwiped")
    assert code == 2 and "control character U+001B at position 5" in err
    code, _, err = cli(capsys, "reject", "1", "--reason", "no \u202eevil")
    assert code == 2 and "control character U+202E" in err
    code, _, err = cli(capsys, "reject", "1", "--reason", "x" * 2001)
    assert code == 2 and "2,001 characters long" in err
    untouched()
    assert percentage(capsys, "alpha") == 25.0


def test_without_the_database_nothing_is_asked_or_decided(state, capsys, monkeypatch):
    monkeypatch.setenv("ROLLOUT_FLAG_BACKEND", "yaml")  # the sql backend lives in it
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", "postgresql+psycopg://x@127.0.0.1:9/x")
    code, _, err = cli(capsys, "advance", "alpha", "--reason", "x", "--actor", "alice")
    assert code == 4 and "guards failed: data_fresh" in err  # nothing to measure with
    code, out, err = cli(capsys, "requests")
    assert (code, out) == (4, "") and "change requests need the metrics database" in err
    code, _, err = cli(capsys, "approve", "1")
    assert code == 4 and "nothing decided" in err


# -- a fresh process, as a person types it -------------------------------------------


PROBE = """
import json, os, sys
from app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, out)
"""
#: what listing change requests never needs
HEAVY = ("pandas", "scipy", "alembic", "matplotlib", "prometheus_api_client", "streamlit")


def run(state: Path, *args: str) -> tuple[int, set[str], str, str]:
    """The CLI in a fresh interpreter: exit code, top-level modules, stdout, stderr."""
    probe = state / "probe.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=state,
        env={**os.environ, "PROBE_OUT": str(probe)},
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    result = json.loads(probe.read_text())
    probe.unlink()
    return int(result["code"]), set(result["modules"]), done.stdout, done.stderr


def test_in_a_fresh_process(state, capsys):
    """Listing loads no metrics library; `--actor` on approve stops a real process."""
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for command in ("request", "requests", "approve", "reject", "cancel"):
        assert f"    {command} " in out
    ask(capsys, "alpha", "--reason", "steady", "--actor", "alice")
    code, modules, out, _ = run(state, "requests", "--json")
    assert code == 0 and [r["requester"] for r in json.loads(out)["requests"]] == ["alice"]
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
    code, _, out, err = run(state, "approve", "1", "--actor", "alice-again")
    assert (code, out) == (2, "") and SECOND_PAIR in err
    code, out, _ = cli(capsys, "approve", "1")
    assert code == 0 and out.startswith("#1 approved and applied")
    assert percentage(capsys, "alpha") == 50.0
