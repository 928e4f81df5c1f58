"""The command line against real sources: exact numbers, exit codes, JSON only on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.metrics_db.database import insert_rollups, open_database
from tests.integration.conftest import REFERENCE_END
from tests.support.servers import free_port
from tests.support.workload import reference_rollups

FLAGS = """
version: "3.1"
phases:
  - {number: 1, name: First, planned_week: 1}
flags:
  alpha:
    state: rollout
    rollout: {percentage: 66}
    metadata: {phase: 1, description: "the busy one"}
  beta:
    state: enabled
    metadata: {phase: 1}
  quiet:
    state: disabled
"""
AT = REFERENCE_END.isoformat()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    """A config and a SQLite database with the reference workload; settings point at them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    insert_rollups(open_database(url), reference_rollups(REFERENCE_END, hours=1.0))
    monkeypatch.setenv("ROLLOUT_FLAGS_FILE", str(tmp_path / "feature_flags.yaml"))
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", url)
    return tmp_path


def _status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["status", "--json", "--at", AT, *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.fixture(params=[pytest.param("prometheus", marks=pytest.mark.prometheus), "sql"])
def source(request, workspace, monkeypatch) -> str:
    if request.param == "prometheus":
        server = request.getfixturevalue("backfilled_prometheus")
        monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", server.url)
    return str(request.param)


def test_status_json_shows_the_known_numbers(source, capsys):
    code, document, _ = _status(capsys)
    assert code == 0
    assert document["source"] == source
    assert document["environment"] == "production"
    assert document["data_age_seconds"] == 0
    flags = {f["flag"]: f for f in document["flags"]}
    assert list(flags) == ["alpha", "beta", "quiet"]  # unhealthy first, then by phase
    alpha = flags["alpha"]
    assert alpha["evaluations_per_second"] == pytest.approx(1.0)
    assert alpha["variants"] == {"off": pytest.approx(1 / 3), "on": pytest.approx(2 / 3)}
    assert alpha["error_rate"] == pytest.approx(1 / 15)
    assert alpha["p99_seconds"] == pytest.approx(0.00975)
    assert alpha["health"] == "unhealthy"
    assert alpha["state"] == "rollout" and alpha["percentage"] == 66.0
    assert flags["beta"]["evaluations_per_second"] == pytest.approx(0.2)
    assert flags["beta"]["health"] == "healthy"
    assert flags["quiet"]["health"] == "no_data"
    assert flags["quiet"]["evaluations_per_second"] == 0


def test_status_takes_one_query_per_question(source, capsys):
    code = main(["status", "--at", AT, "--show-queries"])
    out, err = capsys.readouterr()
    assert code == 0
    # sql: the error counter's counts are one statement (its rates took two: the rows
    # and the time the roll-ups cover)
    expected = {"prometheus": "6 prometheus queries", "sql": "7 sql queries"}[source]
    assert expected in err
    assert out.startswith(f"source: {source}, data 0 s old")
    assert "alpha" in out and "unhealthy" in out


@pytest.mark.prometheus
def test_status_filters_by_phase_and_environment(
    workspace, backfilled_prometheus, monkeypatch, capsys
):
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", backfilled_prometheus.url)
    (workspace / "feature_flags_staging.yaml").write_text("flags:\n  alpha:\n    state: enabled\n")
    code, document, _ = _status(capsys, "--env", "staging", "--phase", "1")
    assert code == 0
    flags = {f["flag"]: f for f in document["flags"]}
    assert set(flags) == {"alpha", "beta"}  # quiet has no phase
    assert flags["alpha"]["state"] == "enabled"
    assert flags["alpha"]["evaluations_per_second"] == pytest.approx(0.2)  # staging: 1 + 2 / 15


def test_prometheus_down_falls_back_to_the_database(workspace, monkeypatch, capsys):
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS", "1")
    code, document, err = _status(capsys)
    assert code == 0
    assert document["source"] == "sql"
    assert "prometheus unavailable" in err
    flags = {f["flag"]: f for f in document["flags"]}
    assert flags["alpha"]["evaluations_per_second"] == pytest.approx(1.0)


def test_no_source_at_all_exits_4_with_every_flag_no_data(workspace, monkeypatch, capsys):
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", f"postgresql+psycopg://x@127.0.0.1:{free_port()}/x")
    code, document, err = _status(capsys)
    assert code == 4
    assert document["source"] == "none"
    assert {f["health"] for f in document["flags"]} == {"no_data"}
    assert "metrics database unavailable" in err
    assert "Traceback" not in err


def test_unknown_environment_is_bad_usage(workspace, capsys):
    assert main(["status", "--env", 'prod"}) or vector(1)']) == 2
    assert "unknown environment" in capsys.readouterr().err


def test_phases_json(workspace, capsys):
    assert main(["phases", "--json"]) == 0
    phases = json.loads(capsys.readouterr().out)["phases"]
    assert phases == [
        {
            "phase": 1,
            "name": "First",
            "planned_week": 1,
            "status": "rolling_out",
            "progress": pytest.approx((66 + 100) / 200),
            "flags": ["alpha", "beta"],
            "flags_complete": 1,
            "blocked_by": [],
        }
    ]


def test_phases_of_the_bundled_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    from app.demo.launcher import prepare_state_dir

    prepare_state_dir(tmp_path)
    assert main(["db", "upgrade"]) == 0  # `phases` only reads: it never migrates
    capsys.readouterr()
    assert main(["phases"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6
    assert out[0].startswith("phase 1 (week 1) Configuration Externalization")
    assert "blocked by phase1_config_externalization" in out[1]


BAD_CONFIGS = {
    "indentation": ('version: "1"\nflags:\n  a:\n    state: enabled\n   default_variant: off\n', 5),
    "unknown state": ('version: "1"\nflags:\n  a:\n    state: rolout\n', 4),
    "percentage 150": (
        'version: "1"\nflags:\n  a:\n    state: rollout\n    rollout:\n      percentage: 150\n',
        6,
    ),
    "duplicate key": (
        'version: "1"\nflags:\n  a:\n    state: enabled\n  a:\n    state: disabled\n',
        5,
    ),
    "forbidden call": (
        'version: "1"\nflags:\n  a:\n    state: enabled\n    targeting_rules:\n'
        "      - name: r\n        condition: \"open('/etc/passwd')\"\n        variant: 'on'\n",
        7,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_reports_file_and_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text, line = BAD_CONFIGS[case]
    path = tmp_path / "feature_flags.yaml"
    path.write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err
    assert "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert path.read_text() == text


def test_check_config_accepts_the_bundled_config_and_refuses_a_missing_file(tmp_path, capsys):
    assert main(["check-config"]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2


def test_a_malformed_config_stops_status_with_exit_1(workspace, capsys):
    (workspace / "feature_flags.yaml").write_text('version: "1"\nflags:\n  a:\n    state: maybe\n')
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "feature_flags.yaml:4" in err and "Traceback" not in err


def test_bad_usage_exits_2():
    with pytest.raises(SystemExit) as stopped:
        main(["status", "--phase", "9"])
    assert stopped.value.code == 2


def test_the_sql_flag_backend_starts_from_the_yaml_and_then_owns_the_flags(
    workspace, monkeypatch, capsys
):
    monkeypatch.setenv("ROLLOUT_FLAG_BACKEND", "sql")
    monkeypatch.setenv("ROLLOUT_DEMO", "true")
    yaml_before = (workspace / "feature_flags.yaml").read_text()
    assert main(["rollback", "alpha", "--reason", "errors", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["applied"] is True
    assert result["from"] == {"state": "rollout", "percentage": 66.0}
    assert result["to"] == {"state": "rollout", "percentage": 50.0}
    assert (workspace / "feature_flags.yaml").read_text() == yaml_before  # the files stay
    code, document, _ = _status(capsys)
    assert code == 0
    assert {f["flag"]: f["percentage"] for f in document["flags"]}["alpha"] == 50.0


def test_cli_actions_honour_roles_and_exit_codes(workspace, monkeypatch, capsys):
    assert main(["rollback", "alpha", "--reason", "x", "--actor", "mallory"]) == 1
    assert "needs the operator role" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUT_ROLES", '{"olga": "operator"}')
    with pytest.raises(SystemExit) as usage:  # argparse: exit 2 with its message
        main(["rollback", "alpha", "--reason", "x", "--actor", "olga", "--to", "abc"])
    assert usage.value.code == 2 and "invalid float value" in capsys.readouterr().err
    assert main(["rollback", "alpha", "--reason", "x", "--actor", "olga", "--to", "101"]) == 2
    assert "within 0..100" in capsys.readouterr().err
    assert main(["rollback", "nope", "--reason", "x", "--actor", "olga"]) == 2
    assert main(["rollback", "alpha", "--reason", "x", "--actor", "olga", "--dry-run"]) == 0
    assert "dry run: nothing written" in capsys.readouterr().out
    assert main(["rollback", "alpha", "--reason", "x", "--actor", "olga", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["to"]["percentage"] == 50.0
    assert main(["audit", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert [(r["actor"], r["outcome"]) for r in records] == [("olga", "applied")]


def _yaml(workspace: Path) -> str:
    return (workspace / "feature_flags.yaml").read_text()


def test_restore_puts_a_killed_flag_back_with_the_exit_codes_of_design_6(
    workspace, monkeypatch, capsys
):
    monkeypatch.setenv("ROLLOUT_ROLES", '{"olga": "operator", "ada": "admin"}')
    monkeypatch.setenv("ROLLOUT_MIN_SOAK_MINUTES", "0")
    # One person restores here: a restore that goes up through a second person's
    # approval is tests/integration/test_cli_approvals.py's.
    monkeypatch.setenv("ROLLOUT_APPROVAL_ENVIRONMENTS", "[]")
    assert main(["rollback", "alpha", "--kill", "--reason", "x", "--actor", "olga", "--json"]) == 0
    kill_id = json.loads(capsys.readouterr().out)["audit_id"]
    killed = _yaml(workspace)

    assert main(["restore", "999", "--reason", "undo", "--actor", "olga"]) == 2
    assert "no audit record #999" in capsys.readouterr().err
    assert main(["restore", kill_id, "--reason", "undo", "--actor", "mallory"]) == 1
    assert "needs the operator role" in capsys.readouterr().err
    # a restore that goes up is guarded: the reference workload is hours old here
    code = main(["restore", kill_id, "--reason", "undo", "--actor", "olga", "--json"])
    refused = json.loads(capsys.readouterr().out)
    assert code in (1, 4) and refused["applied"] is False and refused["restore_of"] == kill_id
    assert {g["name"] for g in refused["guards"]} >= {"data_fresh", "error_rate"}
    assert _yaml(workspace) == killed
    assert (
        main(
            [
                "restore",
                kill_id,
                "--reason",
                "undo",
                "--actor",
                "ada",
                "--dry-run",
                "--override-guards",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "alpha: disabled 0 % → rollout 66 %" in out and "dry run: nothing written" in out
    assert _yaml(workspace) == killed
    assert (
        main(
            [
                "restore",
                kill_id,
                "--reason",
                "undo",
                "--actor",
                "ada",
                "--override-guards",
                "--json",
            ]
        )
        == 0
    )
    done = json.loads(capsys.readouterr().out)
    assert done["applied"] is True and done["override"] is True
    assert done["to"] == {"state": "rollout", "percentage": 66.0}
    assert main(["status", "--json", "--at", AT]) == 0
    flags = {f["flag"]: f for f in json.loads(capsys.readouterr().out)["flags"]}
    assert (flags["alpha"]["state"], flags["alpha"]["percentage"]) == ("rollout", 66.0)
    # the flag changed since the kill: a second restore is a conflict
    assert (
        main(["restore", kill_id, "--reason", "again", "--actor", "ada", "--override-guards"]) == 3
    )
    assert "alpha is now rollout 66 %: ada" in capsys.readouterr().err


def test_audit_shows_the_environment_and_wraps_long_reasons(workspace, monkeypatch, capsys):
    monkeypatch.setenv("ROLLOUT_DEMO", "true")
    (workspace / "feature_flags_staging.yaml").write_text("flags:\n  alpha:\n    state: rollout\n")
    reason = "the error rate rose after the deploy " * 12
    assert main(["rollback", "alpha", "--env", "staging", "--kill", "--reason", reason]) == 0
    assert main(["rollback", "alpha", "--reason", "short one"]) == 0
    capsys.readouterr()
    assert main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " production " in lines[0] and " staging " in lines[2]
    assert lines[1].strip() == "short one"
    wrapped = [line for line in lines[3:] if line.startswith("        ")]
    assert len(wrapped) >= 4 and max(len(line) for line in wrapped) <= 8 + 88
    assert " ".join(line.strip() for line in wrapped) == reason.strip()
    assert main(["audit", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert [r["environment"] for r in records] == ["production", "staging"]
