"""The flag detail's range questions answered alike by a real Prometheus, SQLite and
PostgreSQL, and the time to mitigate measured from each after a known kill."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from app.analysis.exposure import time_to_mitigate
from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from app.services.flag_detail import MITIGATION_STEP
from queries.flag_series import FlagSeriesQueries, PrometheusFlagSeries, SqlFlagSeries
from queries.prometheus import PrometheusMetrics
from queries.source import SourceUnavailable
from tests.integration.conftest import REFERENCE_END
from tests.support.prometheus import openmetrics_from_rollups, start_prometheus
from tests.support.workload import (
    EXPECTED_ERROR_RATES,
    EXPECTED_EVALUATION_RATES,
    EXPECTED_LATENCY_QUANTILES,
    reference_rollups,
)

ENV = "fs-production"  # own names: the PostgreSQL database is shared by the session
INCIDENT = "fs-incident"
STEP = timedelta(minutes=1)
START = REFERENCE_END - timedelta(minutes=15)

#: the kill: recorded at KILL_AT; the instances stop serving "on" after the 15 s
#: interval ending at DROP_AT, 45 s later (config propagation)
DROP_AT = REFERENCE_END - timedelta(minutes=30)
KILL_AT = DROP_AT - timedelta(seconds=45)
KNOWN_TIME_TO_MITIGATE = DROP_AT - KILL_AT


def _workload() -> list[EvaluationRollup]:
    rollups = [
        replace(r, environment=ENV)
        for r in reference_rollups(REFERENCE_END, hours=1.0)
        if r.environment == "production"
    ]
    for index in range(240, 0, -1):
        start = REFERENCE_END - timedelta(seconds=15 * index)
        killed = start + timedelta(seconds=15) > DROP_AT
        for variant, reason, count in (
            ("on", "split", 0 if killed else 10),
            ("off", "default", 15 if killed else 5),
        ):
            rollups.append(
                EvaluationRollup(start, 15, INCIDENT, "checkout", variant, reason, count)
            )
    return rollups


#: each instance's applied percentage at REFERENCE_END: web-2 has not reloaded
APPLIED = {"web-1": 0.0, "web-2": 50.0}


def _openmetrics() -> str:
    text = openmetrics_from_rollups(_workload()).removesuffix("# EOF\n")
    lines = ["# TYPE feature_flag_rollout_percentage gauge"]
    for instance, percentage in APPLIED.items():
        labels = f'flag="checkout",environment="{INCIDENT}",instance="{instance}"'
        for minutes in range(10, -1, -1):
            stamp = int((REFERENCE_END - timedelta(minutes=minutes)).timestamp())
            lines.append(f"feature_flag_rollout_percentage{{{labels}}} {percentage:g} {stamp}")
    return text + "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def series_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_prometheus(_openmetrics(), tmp_path_factory.mktemp("flag-series-prometheus"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("flag-series-sqlite") / "metrics.db"
    engine = open_database(f"sqlite:///{path}")
    insert_rollups(engine, _workload())
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    insert_rollups(engine, _workload())
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("prometheus", marks=pytest.mark.prometheus),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def source(request: pytest.FixtureRequest) -> FlagSeriesQueries:
    if request.param == "prometheus":
        return PrometheusFlagSeries(PrometheusMetrics(request.getfixturevalue("series_prometheus")))
    return SqlFlagSeries(request.getfixturevalue(f"{request.param}_engine"))


def test_variant_rates_over_time(source):
    frame = source.variant_rates(ENV, "alpha", START, REFERENCE_END, STEP)
    assert list(frame.columns) == ["variant", "timestamp", "evaluations_per_second"]
    for variant, rate in EXPECTED_EVALUATION_RATES["production"]["alpha"].items():
        points = frame[frame["variant"] == variant]
        assert len(points) == 16
        assert points["timestamp"].iloc[0] == START
        assert points["timestamp"].iloc[-1] == REFERENCE_END
        assert list(points["evaluations_per_second"]) == pytest.approx([rate] * 16, rel=1e-9)


def test_error_rate_over_time(source):
    frame = source.error_rates(ENV, "alpha", START, REFERENCE_END, STEP)
    assert list(frame.columns) == ["timestamp", "errors_per_second"]
    expected = EXPECTED_ERROR_RATES["production"]["alpha"]
    assert list(frame["errors_per_second"]) == pytest.approx([expected] * 16, rel=1e-9)


def test_latency_quantiles_over_time_in_one_query(source):
    frame = source.latency_quantiles(ENV, "alpha", START, REFERENCE_END, STEP)
    assert list(frame.columns) == ["quantile", "timestamp", "seconds"]
    assert sorted(set(frame["quantile"])) == [0.5, 0.95, 0.99]
    for quantile, seconds in EXPECTED_LATENCY_QUANTILES["production"]["alpha"].items():
        points = frame[frame["quantile"] == quantile]
        assert list(points["seconds"]) == pytest.approx([seconds] * 16, rel=1e-9)
    if isinstance(source, PrometheusFlagSeries):
        assert len(source.issued) == 1


def test_an_unknown_flag_or_environment_gives_empty_frames(source):
    for env, flag in ((ENV, 'no"such\\flag'), ("nowhere", "alpha")):
        assert source.variant_rates(env, flag, START, REFERENCE_END, STEP).empty
        assert source.latency_quantiles(env, flag, START, REFERENCE_END, STEP).empty


@pytest.mark.prometheus
def test_prometheus_and_sqlite_give_the_same_series(series_prometheus, sqlite_engine):
    prometheus = PrometheusFlagSeries(PrometheusMetrics(series_prometheus))
    sql = SqlFlagSeries(sqlite_engine)
    for name in ("variant_rates", "error_rates", "latency_quantiles"):
        a = getattr(prometheus, name)(ENV, "alpha", START, REFERENCE_END, STEP)
        b = getattr(sql, name)(ENV, "alpha", START, REFERENCE_END, STEP)
        assert list(a.columns) == list(b.columns)
        assert list(a["timestamp"]) == list(b["timestamp"])
        assert list(a.iloc[:, -1]) == pytest.approx(list(b.iloc[:, -1]), rel=1e-9)
    start = KILL_AT - timedelta(minutes=5)
    a = prometheus.variant_rate(INCIDENT, "checkout", "on", start, REFERENCE_END, MITIGATION_STEP)
    b = sql.variant_rate(INCIDENT, "checkout", "on", start, REFERENCE_END, MITIGATION_STEP)
    assert list(a["timestamp"]) == list(b["timestamp"])
    assert list(a["evaluations_per_second"]) == pytest.approx(
        list(b["evaluations_per_second"]), rel=1e-9
    )


def test_time_to_mitigate_after_a_kill_is_the_known_delay(source):
    start = KILL_AT - timedelta(minutes=5)
    end = KILL_AT + timedelta(minutes=10)
    frame = source.variant_rate(INCIDENT, "checkout", "on", start, end, MITIGATION_STEP)
    assert list(frame.columns) == ["timestamp", "evaluations_per_second"]
    before = frame[frame["timestamp"] <= KILL_AT]["evaluations_per_second"]
    assert list(before) == pytest.approx([10 / 15] * len(before), rel=1e-9)
    points = [
        (t.to_pydatetime(), float(v))
        for t, v in frame[["timestamp", "evaluations_per_second"]].itertuples(index=False)
    ]
    measured = time_to_mitigate(points, KILL_AT)
    assert measured is not None
    assert abs(measured - KNOWN_TIME_TO_MITIGATE) <= timedelta(seconds=15)


@pytest.mark.prometheus
def test_per_instance_applied_percentage_comes_from_prometheus(series_prometheus):
    prometheus = PrometheusFlagSeries(PrometheusMetrics(series_prometheus))
    frame = prometheus.applied_percentages(INCIDENT, "checkout", REFERENCE_END)
    assert dict(zip(frame["instance"], frame["percentage"], strict=True)) == APPLIED


def test_the_database_cannot_say_what_each_instance_applies(sqlite_engine):
    assert (
        SqlFlagSeries(sqlite_engine).applied_percentages(INCIDENT, "checkout", REFERENCE_END)
        is None
    )


def test_an_unreachable_prometheus_is_source_unavailable():
    down = PrometheusFlagSeries(PrometheusMetrics("http://127.0.0.1:9", timeout_seconds=1))
    with pytest.raises(SourceUnavailable):
        down.variant_rates(ENV, "alpha", START, REFERENCE_END, STEP)
