"""The canary questions answered alike by a real Prometheus, SQLite and PostgreSQL, and
the verdicts they lead to (fail for a regression, pass for a clean canary,
inconclusive for too short a window), also through the `canary` command's handler."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.analysis.canary import Verdict
from app.analysis.canary_analysis import latency_step, load_canary
from app.cli.canary import add_canary_command, run_canary
from app.metrics_db.database import open_database
from app.settings import Settings
from queries.canary import (
    CanaryQueries,
    PrometheusCanaryQueries,
    SqlCanaryQueries,
    insert_request_rollups,
)
from queries.prometheus import PrometheusMetrics
from tests.integration.conftest import REFERENCE_END
from tests.support.canary_workload import (
    CLEAN_ENV,
    REGRESSION_ENV,
    REGRESSION_P99,
    REGRESSION_PER_INTERVAL,
    canary_rollups,
    openmetrics_from_request_rollups,
)
from tests.support.prometheus import start_prometheus

WINDOW = timedelta(minutes=5)
VERDICT_WINDOW = timedelta(minutes=15)


@pytest.fixture(scope="module")
def canary_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus of its own, backfilled with one hour of the canary workload."""
    text = openmetrics_from_request_rollups(canary_rollups(REFERENCE_END, hours=1.0))
    server = start_prometheus(text, tmp_path_factory.mktemp("canary-prometheus"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("canary-sqlite") / "metrics.db"
    engine = open_database(f"sqlite:///{path}")
    insert_request_rollups(engine, canary_rollups(REFERENCE_END, hours=1.0))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    insert_request_rollups(engine, canary_rollups(REFERENCE_END, hours=1.0))
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("prometheus", marks=pytest.mark.prometheus),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def source(request: pytest.FixtureRequest) -> CanaryQueries:
    if request.param == "prometheus":
        url = request.getfixturevalue("canary_prometheus")
        return PrometheusCanaryQueries(PrometheusMetrics(url))
    return SqlCanaryQueries(request.getfixturevalue(f"{request.param}_engine"))


def test_request_counts_per_track_over_five_minutes(source):
    frame = source.request_counts(REGRESSION_ENV, WINDOW, REFERENCE_END)
    intervals = WINDOW / timedelta(seconds=15)
    got = {track: (r, e) for track, r, e in frame.itertuples(index=False)}
    assert list(frame.columns) == ["track", "requests", "errors"]
    assert set(got) == {"canary", "stable"}
    for track, (requests, errors) in REGRESSION_PER_INTERVAL.items():
        assert got[track] == pytest.approx((requests * intervals, errors * intervals), rel=1e-9)


def test_request_counts_for_an_unknown_environment_are_empty(source):
    frame = source.request_counts('no"such\\env', WINDOW, REFERENCE_END)
    assert frame.empty
    assert list(frame.columns) == ["track", "requests", "errors"]


def test_p99_series_per_step(source):
    step = timedelta(minutes=1)
    start = REFERENCE_END - timedelta(minutes=15) + step
    frame = source.latency_series(REGRESSION_ENV, start, REFERENCE_END, step)
    assert list(frame.columns) == ["track", "timestamp", "seconds"]
    for track, p99 in REGRESSION_P99.items():
        points = frame[frame["track"] == track]
        assert len(points) == 15
        assert points["timestamp"].iloc[0] == start
        assert points["timestamp"].iloc[-1] == REFERENCE_END
        assert list(points["seconds"]) == pytest.approx([p99] * 15, rel=1e-9)


def test_newest_request_time_is_the_last_interval_end(source):
    assert source.newest_request_time(REGRESSION_ENV, REFERENCE_END) == REFERENCE_END


@pytest.mark.prometheus
def test_sources_give_the_same_frames(canary_prometheus, sqlite_engine):
    prometheus = PrometheusCanaryQueries(PrometheusMetrics(canary_prometheus))
    sql = SqlCanaryQueries(sqlite_engine)
    step = timedelta(minutes=1)
    start = REFERENCE_END - timedelta(minutes=10)
    for env in (REGRESSION_ENV, CLEAN_ENV):
        a = prometheus.latency_series(env, start, REFERENCE_END, step)
        b = sql.latency_series(env, start, REFERENCE_END, step)
        assert list(a["track"]) == list(b["track"])
        assert list(a["timestamp"]) == list(b["timestamp"])
        assert list(a["seconds"]) == pytest.approx(list(b["seconds"]), rel=1e-9)
    a = prometheus.request_counts(REGRESSION_ENV, WINDOW, REFERENCE_END)
    b = sql.request_counts(REGRESSION_ENV, WINDOW, REFERENCE_END)
    assert list(a["track"]) == list(b["track"]) == ["canary", "stable"]
    assert list(a["requests"]) == pytest.approx(list(b["requests"]), rel=1e-9)
    assert list(a["errors"]) == pytest.approx(list(b["errors"]), rel=1e-9)


def test_a_regression_fails(source):
    analysis = load_canary(
        [source], REGRESSION_ENV, VERDICT_WINDOW, REFERENCE_END, latency_step(VERDICT_WINDOW)
    )
    report = analysis.report
    assert analysis.source == source.name
    assert analysis.notices == ()
    assert report.verdict is Verdict.FAIL
    errors, latency = report.metrics
    assert errors.verdict is Verdict.FAIL
    assert errors.canary == pytest.approx(0.10)
    assert errors.baseline == pytest.approx(0.01)
    assert errors.p_value < 0.02
    assert latency.verdict is Verdict.FAIL
    assert latency.canary == pytest.approx(0.39)
    assert latency.baseline == pytest.approx(0.15)
    assert latency.p_value < 0.02


def test_a_clean_canary_passes(source):
    report = load_canary([source], CLEAN_ENV, VERDICT_WINDOW, REFERENCE_END).report
    assert report.verdict is Verdict.PASS
    errors, latency = report.metrics
    assert errors.verdict is Verdict.PASS
    assert errors.canary == pytest.approx(0.01, abs=0.0005)
    assert latency.verdict is Verdict.PASS


def test_a_one_minute_window_is_inconclusive(source):
    report = load_canary(
        [source], REGRESSION_ENV, timedelta(minutes=1), REFERENCE_END, timedelta(minutes=1)
    ).report
    assert report.verdict is Verdict.INCONCLUSIVE
    assert {m.verdict for m in report.metrics} == {Verdict.INCONCLUSIVE}
    assert "too few requests" in report.metrics[0].detail


@pytest.mark.prometheus
def test_a_down_prometheus_falls_back_to_the_database(sqlite_engine):
    down = PrometheusCanaryQueries(PrometheusMetrics("http://127.0.0.1:9", timeout_seconds=1))
    analysis = load_canary(
        [down, SqlCanaryQueries(sqlite_engine)], REGRESSION_ENV, VERDICT_WINDOW, REFERENCE_END
    )
    assert analysis.source == "sql"
    assert analysis.report.verdict is Verdict.FAIL
    assert any("prometheus unavailable" in n for n in analysis.notices)
    assert analysis.data_age_seconds == 0.0


def test_no_source_is_inconclusive_and_says_so():
    down = PrometheusCanaryQueries(PrometheusMetrics("http://127.0.0.1:9", timeout_seconds=1))
    analysis = load_canary([down], REGRESSION_ENV, VERDICT_WINDOW, REFERENCE_END)
    assert analysis.source == "none"
    assert analysis.report.verdict is Verdict.INCONCLUSIVE
    assert analysis.notices[-1] == "No metrics source answered: no canary verdict."


# -- the `canary` command's handler ----------------------------------------------------


def _settings(tmp_path: Path, database: str, prometheus: str | None = None) -> Settings:
    (tmp_path / "feature_flags.yaml").write_text('version: "1"\nflags: {}\n')
    (tmp_path / "feature_flags_staging.yaml").write_text("flags: {}\n")
    return Settings(state_dir=tmp_path, database_url=database, prometheus_url=prometheus)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_canary_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["canary", *argv])


@pytest.mark.prometheus
def test_canary_command_prints_the_json_and_refuses_a_regression(
    tmp_path, canary_prometheus, capsys, no_rollout_environment
):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    open_database(empty).dispose()  # `canary` only reads: it never migrates
    settings = _settings(tmp_path, empty, canary_prometheus)
    args = _args(
        "--env", REGRESSION_ENV, "--window", "15m", "--json", "--at", "2026-01-01T00:00:00Z"
    )
    assert args.run is run_canary
    assert run_canary(args, settings) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == "fail"
    assert [m["name"] for m in document["metrics"]] == ["error ratio", "p99 latency"]
    errors = document["metrics"][0]
    assert set(errors) >= {"name", "verdict", "canary", "baseline", "statistic", "p_value"}
    assert errors["canary"] == pytest.approx(0.10)
    assert errors["p_value"] < 0.02


def test_canary_command_passes_a_clean_canary_from_the_database(
    tmp_path, sqlite_engine, capsys, no_rollout_environment
):
    settings = _settings(tmp_path, str(sqlite_engine.url))
    args = _args("--env", CLEAN_ENV, "--at", REFERENCE_END.isoformat())
    assert run_canary(args, settings) == 0
    out = capsys.readouterr().out
    assert out.startswith("canary verdict: PASS (source: sql, window 15 min)")
    assert "1.00 %" in out


def test_canary_command_inconclusive_exits_zero_and_unknown_env_is_usage(
    tmp_path, sqlite_engine, capsys, no_rollout_environment
):
    settings = _settings(tmp_path, str(sqlite_engine.url))
    at = REFERENCE_END.isoformat()
    assert (
        run_canary(_args("--env", REGRESSION_ENV, "--window", "1m", "--json", "--at", at), settings)
        == 0
    )
    assert json.loads(capsys.readouterr().out)["verdict"] == "inconclusive"
    assert run_canary(_args("--env", "nowhere", "--at", at), settings) == 2


def test_canary_command_exits_4_when_no_source_answers(tmp_path, capsys, no_rollout_environment):
    settings = _settings(
        tmp_path, "postgresql+psycopg://postgres@127.0.0.1:9/none", "http://127.0.0.1:9"
    )
    assert run_canary(_args("--json", "--at", REFERENCE_END.isoformat()), settings) == 4
    captured = capsys.readouterr()
    assert json.loads(captured.out)["verdict"] == "inconclusive"
    assert "No metrics source answered" in captured.err


def test_window_must_be_a_duration():
    with pytest.raises(SystemExit):
        _args("--window", "fifteen")
