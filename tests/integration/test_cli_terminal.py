"""What an on-call terminal sees: a closed pipe ends the command quietly, and
`check-config` names a `user_list` rollout that lists nobody."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.metrics_db.database import open_database
from app.rollout.exit_codes import ExitCode

#: enough flags that `status --json` writes far more than a pipe holds (64 KiB)
MANY_FLAGS = 3000


def _many_flags(path: Path) -> None:
    lines = ['version: "1"', "flags:"]
    for n in range(MANY_FLAGS):
        lines += [f"  flag_{n:04d}:", "    state: rollout", "    rollout: {percentage: 10}"]
    path.write_text("\n".join(lines) + "\n")


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a terminal whose settings point into `tmp_path`, its metrics
    database migrated (read-only commands never migrate)."""
    open_database(f"sqlite:///{tmp_path / 'metrics.db'}").dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env["ROLLOUT_FLAGS_FILE"] = str(tmp_path / "feature_flags.yaml")
    env["ROLLOUT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'metrics.db'}"
    env["ROLLOUT_STATE_DIR"] = str(tmp_path)
    return env


def test_status_json_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    """`rollout-dashboard status --json | head -1` in a real shell pipeline: head prints
    the first line, the dashboard exits 141 (128 + SIGPIPE) with nothing on stderr."""
    _many_flags(tmp_path / "feature_flags.yaml")
    command = Path(sys.executable).with_name("rollout-dashboard")
    script = f'"{command}" status --json 2>err.txt | head -1; echo "${{PIPESTATUS[0]}}" > code.txt'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        check=False,
    )
    assert done.stdout == "{\n"
    assert (tmp_path / "err.txt").read_text() == ""
    assert int((tmp_path / "code.txt").read_text()) == ExitCode.CLOSED_PIPE == 141


def test_a_reader_gone_before_the_first_line_still_gets_no_traceback(tmp_path: Path) -> None:
    """The reading end closed before the command writes anything (`| true`)."""
    (tmp_path / "feature_flags.yaml").write_text(
        'version: "1"\nflags:\n  a:\n    state: rollout\n    rollout: {percentage: 5}\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "status", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**_clean_env(tmp_path), "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141
    assert err == ""


def test_the_full_document_still_reaches_a_reader_that_stays(tmp_path: Path) -> None:
    _many_flags(tmp_path / "feature_flags.yaml")
    done = subprocess.run(
        [Path(sys.executable).with_name("rollout-dashboard"), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["flags"]) == MANY_FLAGS


EMPTY_LIST = """version: "1"
flags:
  beta_testers:
    state: rollout
    rollout:
      strategy: user_list
      user_list: []
  listed:
    state: rollout
    rollout: {strategy: user_list, user_list: [ana]}
"""


def test_check_config_names_a_user_list_rollout_that_lists_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "feature_flags.yaml"
    path.write_text(EMPTY_LIST)
    (tmp_path / "feature_flags_staging.yaml").write_text(
        "flags:\n  listed:\n    rollout: {user_list: []}\n"
    )
    assert main(["check-config", str(path)]) == ExitCode.REFUSED
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:7: beta_testers: rollout strategy user_list with no user_list (in the base "
        "config, environment staging): the flag is on for nobody; list its users or choose "
        "another strategy",
        f"{tmp_path / 'feature_flags_staging.yaml'}:3: listed: rollout strategy user_list with "
        "no user_list (in environment staging): the flag is on for nobody; list its users or "
        "choose another strategy",
        "2 problem(s); nothing was written",
    ]
