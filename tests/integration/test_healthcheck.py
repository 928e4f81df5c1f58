"""`rollout-dashboard healthcheck [--ready]` as a probe runs it: a real PostgreSQL, a
PostgreSQL port nothing listens on, a real Prometheus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.flags.loader import BUNDLED_CONFIG
from app.rollout.exit_codes import ExitCode
from tests.support.prometheus import BackfilledPrometheus
from tests.unit.test_probes import closed_port

PASSWORD = "hunter2-n0t-for-logs"


def healthcheck(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    flags = tmp_path / "flags"
    flags.mkdir(exist_ok=True)
    for source in BUNDLED_CONFIG.parent.glob("feature_flags*.yaml"):
        shutil.copyfile(source, flags / source.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env |= {
        "ROLLOUT_STATE_DIR": str(tmp_path / "state"),
        "ROLLOUT_FLAGS_FILE": str(flags / BUNDLED_CONFIG.name),
        "ROLLOUT_ENVIRONMENT": "production",
        **{f"ROLLOUT_{name.upper()}": value for name, value in settings.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "healthcheck", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.postgres
def test_healthy_on_a_real_postgresql(tmp_path: Path, postgres_url: str):
    done = healthcheck(tmp_path, database_url=postgres_url)
    assert (done.returncode, done.stderr) == (ExitCode.DONE, "")
    assert done.stdout == "ok: metrics database, flag backend answered\n"


@pytest.mark.postgres
def test_a_stopped_database_fails_with_one_line_and_no_secret(tmp_path: Path):
    url = f"postgresql+psycopg://rollout:{PASSWORD}@127.0.0.1:{closed_port()}/rollout"
    done = healthcheck(tmp_path, database_url=url)
    assert done.returncode == ExitCode.UNAVAILABLE
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("unhealthy: metrics database unavailable: OperationalError: ")
    assert "Connection refused" in lines[0]
    assert PASSWORD not in done.stderr


@pytest.mark.postgres
def test_the_sql_flag_backend_fails_with_its_database(tmp_path: Path):
    url = f"postgresql+psycopg://rollout:{PASSWORD}@127.0.0.1:{closed_port()}/rollout"
    done = healthcheck(tmp_path, database_url=url, flag_backend="sql")
    assert done.returncode == ExitCode.UNAVAILABLE
    assert "; flag backend unavailable: the sql backend needs the metrics database" in done.stderr
    assert PASSWORD not in done.stderr


@pytest.mark.prometheus
def test_ready_needs_prometheus_to_answer(
    tmp_path: Path, backfilled_prometheus: BackfilledPrometheus
):
    ready = healthcheck(tmp_path, "--ready", prometheus_url=backfilled_prometheus.url)
    assert (ready.returncode, ready.stdout) == (
        ExitCode.DONE,
        "ok: metrics database, flag backend, metrics source answered\n",
    )
    down = f"http://reader:{PASSWORD}@127.0.0.1:{closed_port()}"
    alive = healthcheck(tmp_path, prometheus_url=down)
    not_ready = healthcheck(tmp_path, "--ready", prometheus_url=down)
    assert alive.returncode == ExitCode.DONE  # liveness never waits on Prometheus
    assert not_ready.returncode == ExitCode.UNAVAILABLE
    assert not_ready.stderr == (
        "unhealthy: metrics source unavailable: Prometheus: connection refused or host unknown\n"
    )


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"rollout-dashboard {version('rollout-dashboard')}\n"
