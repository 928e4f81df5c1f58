"""`app.probes.check_health` on real SQLite files, real flag files and closed ports."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from app.flags.loader import BUNDLED_CONFIG
from app.probes import Dependency, HealthReport, ProbeResult, check_health
from app.settings import Settings


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def flags_dir(tmp_path: Path) -> Path:
    for source in BUNDLED_CONFIG.parent.glob("feature_flags*.yaml"):
        shutil.copyfile(source, tmp_path / source.name)
    return tmp_path / BUNDLED_CONFIG.name


def settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "flags_file": flags_dir(tmp_path),
        "environment": "production",
    }
    return Settings(**(base | values))  # type: ignore[arg-type]


def test_a_database_and_flags_that_answer_are_healthy(tmp_path: Path, no_rollout_environment):
    report = check_health(settings(tmp_path))
    assert report.healthy
    assert [r.dependency for r in report.results] == [
        Dependency.DATABASE,
        Dependency.FLAG_BACKEND,
    ]
    assert report.reason == "ok: metrics database, flag backend answered"


def test_an_unreachable_database_is_named_without_its_password(
    tmp_path: Path, no_rollout_environment
):
    url = f"postgresql+psycopg://rollout:hunter2-s3cret@127.0.0.1:{closed_port()}/rollout"
    report = check_health(settings(tmp_path, database_url=url), timeout_seconds=2)
    assert not report.healthy
    assert report.results[0] == ProbeResult(Dependency.DATABASE, report.results[0].problem)
    assert report.reason.startswith("metrics database unavailable: OperationalError: ")
    assert "Connection refused" in report.reason
    assert "hunter2" not in report.reason
    assert "\n" not in report.reason
    assert report.results[1].ok  # the yaml flags are still read


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path, no_rollout_environment):
    directory = tmp_path / "metrics.db"
    directory.mkdir()  # a folder where the database file should be
    report = check_health(settings(tmp_path, database_url=f"sqlite:///{directory}"))
    assert not report.healthy
    assert report.reason.startswith("metrics database unavailable: OperationalError")


def test_a_missing_flag_file_makes_the_flag_backend_unavailable(
    tmp_path: Path, no_rollout_environment
):
    missing = tmp_path / "nowhere" / "feature_flags.yaml"
    report = check_health(settings(tmp_path, flags_file=missing))
    assert not report.healthy
    assert report.results[0].ok
    assert report.reason.startswith("flag backend unavailable: ")
    assert str(missing) in report.reason


def test_the_sql_backend_is_unavailable_with_its_database(tmp_path: Path, no_rollout_environment):
    url = f"postgresql+psycopg://rollout@127.0.0.1:{closed_port()}/rollout"
    report = check_health(settings(tmp_path, database_url=url, flag_backend="sql"))
    assert [r.ok for r in report.results] == [False, False]
    assert "flag backend unavailable: the sql backend needs the metrics database" in report.reason


def test_readiness_needs_the_configured_prometheus(tmp_path: Path, no_rollout_environment):
    url = f"http://reader:t0ps3cret@127.0.0.1:{closed_port()}"
    alive = check_health(settings(tmp_path, prometheus_url=url))
    ready = check_health(settings(tmp_path, prometheus_url=url), ready=True)
    assert alive.healthy  # liveness never waits on Prometheus
    assert not ready.healthy
    assert ready.reason == (
        "metrics source unavailable: Prometheus: connection refused or host unknown"
    )
    assert "t0ps3cret" not in ready.reason


def test_without_prometheus_the_database_is_the_metrics_source(
    tmp_path: Path, no_rollout_environment
):
    report = check_health(settings(tmp_path), ready=True)
    assert report.healthy
    assert report.results[-1] == ProbeResult(Dependency.METRICS_SOURCE)


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        ((ProbeResult(Dependency.DATABASE),), "ok: metrics database answered"),
        (
            (
                ProbeResult(Dependency.DATABASE, "down"),
                ProbeResult(Dependency.FLAG_BACKEND),
                ProbeResult(Dependency.METRICS_SOURCE, "HTTP 503"),
            ),
            "metrics database unavailable: down; metrics source unavailable: HTTP 503",
        ),
    ],
)
def test_the_reason_is_one_line_naming_every_failure(results: tuple[ProbeResult, ...], reason: str):
    assert HealthReport(results).reason == reason
