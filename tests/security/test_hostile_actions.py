"""Hostile input to the actions, through the command line and through the action
function: every one is refused with a clear message and its documented exit code (2:
bad input), never a traceback, and nothing is written (flag files, history, journal and
audit rows compared before and after). Text that is allowed (SQL or PromQL fragments in
a reason or an actor name) is stored literally and the audit table stays intact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st

from app.audit import Outcome
from app.cli import main
from app.rollout.action_model import Action, ActionRequest
from app.rollout.exit_codes import ExitCode
from app.rollout.roles import Identity, Role
from app.runtime import Runtime, open_runtime
from app.settings import load_settings
from tests.security.untouched import fingerprint, make_state, unchanged

SQL = "x'; DROP TABLE audit_log; --"
PROMQL = 'ab_testing"}) or vector(1)'
LONG_KEY = "k" * 10_000


@pytest.fixture
def state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Iterator[Path]:
    make_state(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_DEMO", "true")  # every CLI actor is an operator
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `rollout-dashboard ARGS` (argparse's exit too)."""
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def refused(
    capsys: pytest.CaptureFixture[str], state: Path, args: list[str], code: int, message: str
) -> None:
    """`args` exits with `code`, says `message` on stderr and writes nothing."""
    untouched = unchanged(state)
    got, _, err = cli(capsys, *args)
    assert got == code, err
    assert message in err
    untouched()


# -- reasons ---------------------------------------------------------------------------

REASONS = {
    "empty": ("", "a reason is required"),
    "blank": ("  \n\t  ", "a reason is required"),
    "100,000 characters": ("x" * 100_000, "100,000 characters long; the limit is 2,000"),
    "2,001 characters": ("y" * 2001, "2,001 characters long; the limit is 2,000"),
    "terminal escape": ("ok\x1b[2Jwiped", "control character U+001B at position 3"),
    "bell": ("ring\x07", "control character U+0007"),
    "right-to-left override": ("fix \u202eevil", "control character U+202E"),
    "delete character": ("rm\x7f", "control character U+007F"),
}


@pytest.mark.parametrize(("reason", "message"), REASONS.values(), ids=REASONS.keys())
def test_a_bad_reason_is_refused_on_the_command_line(capsys, state, reason, message):
    refused(capsys, state, ["rollback", "ab_testing", "--reason", reason], ExitCode.USAGE, message)


# -- actor names, flag keys, environments -----------------------------------------------

BAD_ARGUMENTS = {
    "actor 10,000 characters": (
        ["--actor", "a" * 10_000],
        "the actor name is 10,000 characters long; the limit is 200",
    ),
    "actor with escape": (["--actor", "ev\x1b[31mil"], "the actor name contains the control"),
    "actor with newline": (["--actor", "bob\nroot"], "control character U+000A"),
    "flag with PromQL": (["--flag", PROMQL], "unknown flag 'ab_testing\"}) or vector(1)'"),
    "flag with SQL": (["--flag", SQL], "unknown flag"),
    "flag with braces": (["--flag", "{{ab_testing}}"], "unknown flag"),
    "flag with newline": (["--flag", "ab_testing\nx"], "the flag key contains the control"),
    "flag with Cyrillic a": (["--flag", "\u0430b_testing"], "unknown flag"),
    "flag with zero-width space": (["--flag", "ab_\u200btesting"], "unknown flag"),
    "flag 10,000 characters": (["--flag", LONG_KEY], "the flag key is 10,000 characters long"),
    "flag as a path": (["--flag", "../../etc/passwd"], "unknown flag"),
    "environment unknown": (["--env", "nope"], "unknown environment 'nope'"),
    "environment as a path": (["--env", "../../etc"], "unknown environment '../../etc'"),
    "environment with quote": (["--env", "prod'uction"], "unknown environment"),
    "environment in full-width letters": (["--env", "ｐｒｏｄｕｃｔｉｏｎ"], "unknown environment"),
    "environment with script": (["--env", "<script>alert(1)</script>"], "unknown environment"),
    "environment 10,000 characters": (
        ["--env", "e" * 10_000],
        f"unknown environment '{'e' * 40}… (10000 characters)'",
    ),
}


@pytest.mark.parametrize(("extra", "message"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
@pytest.mark.parametrize("command", ["advance", "rollback", "kill"])
def test_a_bad_name_is_refused_by_every_action_command(capsys, state, command, extra, message):
    flag = extra[1] if extra[0] == "--flag" else "ab_testing"
    rest = [] if extra[0] == "--flag" else extra
    args = {
        "advance": ["advance", flag],
        "rollback": ["rollback", flag],
        "kill": ["rollback", flag, "--kill"],
    }[command]
    refused(capsys, state, [*args, "--reason", "r", *rest], ExitCode.USAGE, message)
    # the long value is never echoed whole
    assert LONG_KEY not in capsys.readouterr().err


def test_an_unknown_flag_names_no_other_flag_and_json_says_the_same(capsys, state):
    untouched = unchanged(state)
    code, out, err = cli(capsys, "rollback", PROMQL, "--reason", "r", "--json")
    assert code == ExitCode.USAGE
    assert '"error": "unknown flag' in out and 'applied": false' in out
    assert "canary_checkout" not in out + err
    untouched()


# -- restore and audit ----------------------------------------------------------------

AUDIT_IDS = {
    "superscript two": "²",
    "Arabic-Indic three": "٣",
    "SQL": "1 OR 1=1",
    "negative": "-1",
    "past 64 bits": "99999999999999999999999",
    "terminal escape": "\x1b[2J",
}


@pytest.mark.parametrize("audit_id", AUDIT_IDS.values(), ids=AUDIT_IDS.keys())
def test_restore_of_a_record_that_is_no_record_is_bad_input(capsys, state, audit_id):
    refused(
        capsys, state, ["restore", audit_id, "--reason", "r"], ExitCode.USAGE, "no audit record #"
    )
    assert "\x1b" not in capsys.readouterr().err


BAD_AUDIT_OPTIONS = {
    "limit zero": (["--limit", "0"], "must be 1 to 100,000, got 0"),
    "limit negative": (["--limit", "-5"], "must be 1 to 100,000, got -5"),
    "limit past 64 bits": (["--limit", "99999999999999999999"], "must be 1 to 100,000"),
    "limit not a number": (["--limit", "1; DROP TABLE audit_log"], "not a whole number"),
    "since not an instant": (["--since", "yesterday'--"], "not an ISO-8601 instant"),
}


@pytest.mark.parametrize(
    ("extra", "message"), BAD_AUDIT_OPTIONS.values(), ids=BAD_AUDIT_OPTIONS.keys()
)
def test_bad_audit_options_are_bad_usage(capsys, state, extra, message):
    refused(capsys, state, ["audit", *extra], ExitCode.USAGE, message)


@pytest.mark.parametrize(
    "flag", [SQL, PROMQL, "%", "_"], ids=["SQL", "PromQL", "percent", "underscore"]
)
def test_audit_filters_are_literal_and_the_table_survives(capsys, state, flag):
    untouched = unchanged(state)
    code, out, _ = cli(capsys, "audit", "--flag", flag, "--json")
    assert code == ExitCode.DONE
    assert '"records": []' in out  # a pattern character matches nothing, literally
    untouched()
    code, out, _ = cli(capsys, "audit", "--json")
    assert '"flag": "canary_checkout"' in out and '"actor": "olga"' in out


# -- allowed text is stored literally -------------------------------------------------

LITERAL = {
    "SQL in the reason": (["--reason", SQL], "reason"),
    "PromQL in the reason": (["--reason", PROMQL], "reason"),
    "lines in the reason": (["--reason", "first line\n\tsecond line"], "reason"),
    "SQL in the actor": (
        ["--reason", "r", "--actor", "o'brien); DROP TABLE audit_log;--"],
        "actor",
    ),
}


@pytest.mark.parametrize(("extra", "field"), LITERAL.values(), ids=LITERAL.keys())
def test_allowed_text_is_stored_literally(capsys, state, extra, field):
    before = fingerprint(state)
    code, _, err = cli(capsys, "rollback", "ab_testing", *extra)
    assert code == ExitCode.DONE, err
    newest = open_runtime(load_settings()).audit.entries(limit=1)[0]
    assert getattr(newest, field) == extra[extra.index(f"--{field}") + 1]
    assert newest.outcome is Outcome.APPLIED
    after = fingerprint(state)
    assert after.records[: len(before.records)] == before.records  # older rows intact
    assert len(after.records) == len(before.records) + 1


# -- through the action function (what the pages call) ---------------------------------


def _request(**changes: object) -> ActionRequest:
    values: dict[str, object] = {
        "action": Action.ROLLBACK,
        "environment": "production",
        "reason": "r",
        "identity": Identity("olga", Role.OPERATOR, "oidc"),
        "flag": "ab_testing",
    }
    values.update(changes)
    return ActionRequest(**values)  # type: ignore[arg-type]


FUNCTION_INPUTS: dict[str, tuple[Callable[[], ActionRequest], str]] = {
    "NUL in the reason": (lambda: _request(reason="a\x00b"), "control character U+0000"),
    "NUL in the flag key": (lambda: _request(flag="ab_testing\x00"), "control character U+0000"),
    "NUL in the actor": (
        lambda: _request(identity=Identity("ol\x00ga", Role.OPERATOR, "oidc")),
        "the actor name contains the control character U+0000",
    ),
    "empty actor": (
        lambda: _request(identity=Identity(" ", Role.OPERATOR, "oidc")),
        "the actor name is empty",
    ),
    "100,000-character reason": (
        lambda: _request(reason="z" * 100_000),
        "100,000 characters long; the limit is 2,000",
    ),
    "unknown environment": (lambda: _request(environment="nope"), "unknown environment 'nope'"),
    "environment as a path": (
        lambda: _request(environment="../x"),
        "unknown environment '../x'",
    ),
    "emergency in an unknown environment": (
        lambda: _request(action=Action.EMERGENCY, flag=None, environment="qa"),
        "unknown environment 'qa'",
    ),
}


@pytest.mark.parametrize(("make", "message"), FUNCTION_INPUTS.values(), ids=FUNCTION_INPUTS.keys())
def test_the_action_function_refuses_what_the_cli_refuses(state, make, message):
    untouched = unchanged(state)
    runtime: Runtime = open_runtime(load_settings())
    result = runtime.execute(make())
    assert result.exit_code is ExitCode.USAGE and not result.applied
    assert message in (result.error or "")
    untouched()
    assert not (state / "feature_flags_nope.yaml").exists()


@pytest.mark.postgres
def test_sql_fragments_stay_literal_in_postgresql(capsys, state, monkeypatch, postgres_url):
    """The same fragments against PostgreSQL: filters match nothing, a reason and an
    actor are stored as typed, and the audit table keeps every row."""
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", postgres_url)
    runtime = open_runtime(load_settings())
    before = runtime.audit.entries(limit=100_000)
    for flag in [SQL, PROMQL, "%", "_"]:
        code, out, _ = cli(capsys, "audit", "--flag", flag, "--json")
        assert code == ExitCode.DONE and '"records": []' in out
    actor = "o'brien); DROP TABLE audit_log;--"
    code, _, err = cli(capsys, "rollback", "ab_testing", "--reason", SQL, "--actor", actor)
    assert code == ExitCode.DONE, err
    after = runtime.audit.entries(limit=100_000)
    assert after[1:] == before
    assert (after[0].reason, after[0].actor) == (SQL, actor)
