"""Hostile and mistaken settings (`ROLLOUT_*`): a value that cannot be used stops the
command with exit 2 and one line naming the variable and why, and every page shows the
same list instead of a traceback; nothing is written. A URL's credentials never appear:
not in an error, a warning, a log record, `status --json`, an audit record or a page."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.cli import main
from app.rollout.exit_codes import ExitCode
from tests.security.untouched import fingerprint, make_state, unchanged
from tests.support.servers import free_port

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
SECRET = "s3cret"


@pytest.fixture
def state(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    no_rollout_environment,
) -> Iterator[Path]:
    make_state(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_DEMO", "true")
    caplog.set_level(logging.DEBUG)  # every library's log records, to look for secrets
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


BAD_SETTINGS = {
    "negative refresh": (
        "ROLLOUT_REFRESH_SECONDS",
        "-1",
        "ROLLOUT_REFRESH_SECONDS: Input should be greater than or equal to 2 (got '-1')",
    ),
    "zero refresh": ("ROLLOUT_REFRESH_SECONDS", "0", "ROLLOUT_REFRESH_SECONDS: Input should be"),
    "absurd rate window": (
        "ROLLOUT_RATE_WINDOW_SECONDS",
        "99999999999999999999999",
        "ROLLOUT_RATE_WINDOW_SECONDS: Input should be less than or equal to 604800",
    ),
    "NaN timeout": (
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS",
        "nan",
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS: Input should be a finite number",
    ),
    "negative timeout": (
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS",
        "-5",
        "ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS: Input should be greater than 0",
    ),
    "infinite soak": (
        "ROLLOUT_MIN_SOAK_MINUTES",
        "1e309",
        "ROLLOUT_MIN_SOAK_MINUTES: Input should be a finite number",
    ),
    "words for a number": (
        "ROLLOUT_STALE_AFTER_SECONDS",
        "two minutes",
        "ROLLOUT_STALE_AFTER_SECONDS: Input should be a valid integer",
    ),
    "ftp Prometheus with credentials": (
        "ROLLOUT_PROMETHEUS_URL",
        f"ftp://user:{SECRET}@host/",
        "ROLLOUT_PROMETHEUS_URL: must be an http:// or https:// URL with a host (ftp://***@host/)",
    ),
    "broken IPv6 Prometheus": (
        "ROLLOUT_PROMETHEUS_URL",
        f"http://user:{SECRET}@[::1",
        "ROLLOUT_PROMETHEUS_URL: not a URL (http://***@[::1)",
    ),
    "Prometheus port out of range": (
        "ROLLOUT_PROMETHEUS_URL",
        f"http://user:{SECRET}@host:99999",
        "ROLLOUT_PROMETHEUS_URL: not a URL",
    ),
    "unknown database dialect": (
        "ROLLOUT_DATABASE_URL",
        f"garbage://u:{SECRET}@h/db",
        "ROLLOUT_DATABASE_URL: not an SQLAlchemy database URL (garbage://***@h/db)",
    ),
    "database URL garbage": (
        "ROLLOUT_DATABASE_URL",
        ":::",
        "ROLLOUT_DATABASE_URL: not an SQLAlchemy database URL",
    ),
    "roles not JSON": ("ROLLOUT_ROLES", "{bad", "ROLLOUT_ROLES: not valid JSON"),
    "unknown role": ("ROLLOUT_ROLES", '{"eve": "god"}', "ROLLOUT_ROLES: Input should be 'viewer'"),
    "metric preset as a path": (
        "ROLLOUT_METRIC_PRESET",
        "../../etc/passwd",
        "ROLLOUT_METRIC_PRESET: Input should be 'seed', 'usage', 'openfeature' or 'unleash'",
    ),
}


@pytest.mark.parametrize(("name", "value", "message"), BAD_SETTINGS.values(), ids=BAD_SETTINGS)
def test_a_bad_setting_stops_the_command_naming_it(
    capsys, caplog, monkeypatch, state, name, value, message
):
    untouched = unchanged(state)
    monkeypatch.setenv(name, value)
    for args in (["rollback", "ab_testing", "--reason", "r"], ["status", "--json"]):
        code, out, err = cli(capsys, *args)
        assert code == ExitCode.USAGE
        assert err.startswith("invalid settings: ") and message in err
        assert out == ""
        assert SECRET not in err + caplog.text
    untouched()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [BAD_SETTINGS["negative refresh"], BAD_SETTINGS["ftp Prometheus with credentials"]],
    ids=["negative refresh", "credentials"],
)
def test_every_page_names_the_bad_setting_instead_of_a_traceback(
    monkeypatch, state, name, value, message
):
    untouched = unchanged(state)
    monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "🚦 Rollout Dashboard cannot start: invalid settings"
    assert message in at.code[0].value
    assert SECRET not in _everything_on(at)
    untouched()


def _everything_on(at: AppTest) -> str:
    groups = (at.title, at.markdown, at.code, at.error, at.warning, at.caption, at.info)
    return "\n".join(str(e.value) for group in groups for e in group)


def test_credentials_of_an_unreachable_prometheus_are_never_shown(
    capsys, caplog, monkeypatch, state
):
    port = free_port()
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", f"http://olga:{SECRET}@127.0.0.1:{port}")
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS", "1")
    code, out, err = cli(capsys, "status", "--json")
    assert code == ExitCode.DONE  # the database roll-ups answer
    assert f"prometheus unavailable: cannot connect to http://127.0.0.1:{port}" in err
    code, rolled, rolled_err = cli(capsys, "rollback", "ab_testing", "--reason", "r", "--json")
    assert code == ExitCode.DONE
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60).run()
    assert not at.exception
    page = _everything_on(at)
    assert f"cannot connect to http://127.0.0.1:{port}" in page
    assert f"127.0.0.1:{port}" in caplog.text  # the client's log records were captured
    after = fingerprint(state)
    everywhere = [out, err, rolled, rolled_err, caplog.text, page, repr(after)]
    assert [text for text in everywhere if SECRET in text] == []


def test_credentials_of_an_unreachable_database_are_never_shown(capsys, caplog, monkeypatch, state):
    url = f"postgresql+psycopg://olga:{SECRET}@127.0.0.1:{free_port()}/rollout"
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", url)
    code, out, err = cli(capsys, "status", "--json")
    assert code == ExitCode.UNAVAILABLE
    assert "metrics database unavailable: OperationalError" in err
    code, rolled, rolled_err = cli(capsys, "rollback", "ab_testing", "--reason", "r", "--json")
    assert code == ExitCode.DONE  # a rollback never waits for the database
    journal = (state / "audit-journal.jsonl").read_text()
    assert '"reason": "r"' in journal  # kept locally, without the URL
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60).run()
    assert not at.exception
    everywhere = [out, err, rolled, rolled_err, caplog.text, journal, _everything_on(at)]
    assert [text for text in everywhere if SECRET in text] == []
