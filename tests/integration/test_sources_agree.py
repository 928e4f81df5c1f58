"""One workload, four stores: Prometheus and VictoriaMetrics (PromQL), SQLite and PostgreSQL
(roll-ups) must return the same numbers for every overview question."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, inspect

from app.flags.evaluator import Reason
from app.metrics_db.database import insert_rollups, open_database
from queries.prometheus import PrometheusMetrics
from queries.source import MetricsSource
from queries.sql import SqlMetrics
from tests.integration.conftest import REFERENCE_END
from tests.support.workload import (
    EXPECTED_COUNTS_PER_INTERVAL,
    EXPECTED_ERROR_RATES,
    EXPECTED_ERRORS_PER_INTERVAL,
    EXPECTED_EVALUATION_RATES,
    EXPECTED_FLAG_RATES,
    EXPECTED_LATENCY_QUANTILES,
    INTERVAL_SECONDS,
    reference_rollups,
)

WINDOW = timedelta(minutes=5)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "metrics.db"
    engine = open_database(f"sqlite:///{path}")
    insert_rollups(engine, reference_rollups(REFERENCE_END, hours=1.0))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    insert_rollups(engine, reference_rollups(REFERENCE_END, hours=1.0))
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("prometheus", marks=pytest.mark.prometheus),
        pytest.param("victoriametrics", marks=pytest.mark.victoriametrics),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def source(request: pytest.FixtureRequest) -> MetricsSource:
    if request.param in ("prometheus", "victoriametrics"):
        server = request.getfixturevalue(f"backfilled_{request.param}")
        return PrometheusMetrics(server.url)
    return SqlMetrics(request.getfixturevalue(f"{request.param}_engine"))


def _flat(frame, *columns):
    """{(key, ...): value} from a frame's key columns and its last (value) column."""
    return {tuple(keys): value for *keys, value in frame[[*columns]].itertuples(index=False)}


def _flatten(nested, prefix=()):
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_evaluation_rates(source, environment):
    frame = source.evaluation_rates(environment, WINDOW, REFERENCE_END)
    assert _flat(frame, "flag", "variant", "evaluations_per_second") == pytest.approx(
        _flatten(EXPECTED_EVALUATION_RATES[environment]), rel=1e-9
    )


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_error_rates(source, environment):
    frame = source.error_rates(environment, WINDOW, REFERENCE_END)
    got = _flat(frame, "flag", "errors_per_second")
    assert got == pytest.approx(_flatten(EXPECTED_ERROR_RATES[environment]), rel=1e-9)


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_error_counts_over_the_window_add_up_to_the_rates(source, environment):
    frame = source.error_counts(environment, WINDOW, REFERENCE_END)
    seconds = WINDOW.total_seconds()
    got = {key: errors / seconds for key, errors in _flat(frame, "flag", "errors").items()}
    assert got == pytest.approx(_flatten(EXPECTED_ERROR_RATES[environment]), rel=1e-9)


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_variant_counts_over_the_window_add_up_to_the_rates(source, environment):
    frame = source.variant_counts(environment, WINDOW, REFERENCE_END)
    assert set(frame["reason"]) <= {str(reason) for reason in Reason}
    per_variant = frame.groupby(["flag", "variant"])["evaluations"].sum() / WINDOW.total_seconds()
    got = {key: float(value) for key, value in per_variant.items()}
    assert got == pytest.approx(_flatten(EXPECTED_EVALUATION_RATES[environment]), rel=1e-9)


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_latency_quantiles(source, environment):
    frame = source.latency_quantiles(environment, WINDOW, REFERENCE_END, (0.5, 0.99))
    got = _flat(frame, "flag", "quantile", "seconds")
    assert got == pytest.approx(_flatten(EXPECTED_LATENCY_QUANTILES[environment]), rel=1e-9)


def test_sparklines_hold_the_known_rate_at_every_step(source):
    frame = source.evaluation_sparklines(
        "production", REFERENCE_END - timedelta(minutes=30), REFERENCE_END, timedelta(minutes=1)
    )
    assert set(frame["flag"]) == {"alpha", "beta"}
    for flag, points in frame.groupby("flag"):
        assert len(points) == 31
        assert list(points["evaluations_per_second"]) == pytest.approx(
            [EXPECTED_FLAG_RATES["production"][flag]] * 31, rel=1e-9
        )
    assert frame["timestamp"].max() == REFERENCE_END


SLOT = timedelta(seconds=30)
#: the reference workload's 15 s intervals in each 30 s slot
PER_SLOT = SLOT.total_seconds() / INTERVAL_SECONDS


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_slot_counts_are_the_known_counts_of_every_slot(source, environment):
    start = REFERENCE_END - timedelta(minutes=10)
    frame = source.slot_counts(environment, start, REFERENCE_END, SLOT)
    ends = [start.timestamp() + SLOT.total_seconds() * k for k in range(1, 21)]
    for key, count in EXPECTED_COUNTS_PER_INTERVAL[environment].items():
        rows = frame[
            (frame["flag"] == key[0]) & (frame["variant"] == key[1]) & (frame["reason"] == key[2])
        ]
        assert list(rows["slot_end"]) == ends, key
        assert list(rows["evaluations"]) == pytest.approx([count * PER_SLOT] * 20, rel=1e-9)
    assert len(frame) == 20 * len(EXPECTED_COUNTS_PER_INTERVAL[environment])


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_slot_error_counts_are_the_counters_known_counts(source, environment):
    start = REFERENCE_END - timedelta(minutes=10)
    frame = source.slot_error_counts(environment, start, REFERENCE_END, SLOT)
    got = frame.groupby("flag")["errors"].agg(["sum", "count"])
    for flag, count in EXPECTED_ERRORS_PER_INTERVAL[environment].items():
        assert got.loc[flag, "count"] == 20
        assert got.loc[flag, "sum"] == pytest.approx(count * PER_SLOT * 20, rel=1e-9)


def test_slots_over_the_whole_hour_sum_to_every_evaluation_counted(source):
    # from before the first roll-up: every interval is counted exactly once. Prometheus
    # has no sample before a series' first, so the slot where it first appears counts
    # nothing of it (`queries.prometheus.SLOT_GROWTH`: never more than happened): that
    # slot's intervals fewer than the database's roll-ups, which start from 0
    start = REFERENCE_END - timedelta(minutes=70)
    frame = source.slot_counts("production", start, REFERENCE_END, SLOT)
    summed = frame.groupby(["flag", "variant", "reason"])["evaluations"].sum()
    intervals = 3600 / INTERVAL_SECONDS
    first = REFERENCE_END - timedelta(hours=1) + SLOT
    if isinstance(source, PrometheusMetrics):
        intervals -= PER_SLOT
        first += SLOT
    expected = {k: v * intervals for k, v in EXPECTED_COUNTS_PER_INTERVAL["production"].items()}
    assert {key: float(value) for key, value in summed.items()} == pytest.approx(expected, rel=1e-9)
    assert frame["slot_end"].min() == first.timestamp()


def test_slot_spans_off_the_grid_are_refused_and_an_empty_span_asks_nothing(source):
    with pytest.raises(ValueError, match="slot grid"):
        source.slot_counts("production", REFERENCE_END - timedelta(seconds=45), REFERENCE_END, SLOT)
    asked = len(source.issued)
    assert source.slot_counts("production", REFERENCE_END, REFERENCE_END, SLOT).empty
    assert source.slot_error_counts("nowhere", REFERENCE_END - SLOT, REFERENCE_END, SLOT).empty
    assert len(source.issued) == asked + 1  # the empty span asked nothing


def test_newest_sample_and_nothing_after_the_data(source):
    assert source.newest_sample_time("production", REFERENCE_END) == REFERENCE_END
    assert source.newest_sample_time("nowhere", REFERENCE_END) is None
    later = REFERENCE_END + timedelta(hours=2)
    assert source.evaluation_rates("production", WINDOW, later).empty


def test_hostile_flag_and_environment_change_nothing(source):
    hostile = 'x"}) or vector(1) or sum(up{a="'
    assert source.evaluation_rates("production", WINDOW, REFERENCE_END, flag=hostile).empty
    assert source.error_rates(hostile, WINDOW, REFERENCE_END).empty
    assert source.latency_quantiles("production'; DROP TABLE x; --", WINDOW, REFERENCE_END).empty


@pytest.mark.postgres
def test_migrations_apply_from_empty_on_postgres(postgres_engine):
    tables = set(inspect(postgres_engine).get_table_names())
    assert {"evaluation_rollups", "audit_log", "alembic_version"} <= tables
    open_database(str(postgres_engine.url.render_as_string(hide_password=False)))  # idempotent
