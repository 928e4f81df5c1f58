"""Roll-ups longer than the window a page asks about (the hours `sync-unleash` copies)
count by the share of them the window holds: an hour of 3,600 evaluations read through
a 5-minute window or a 1-minute step is 1 evaluation a second, not 12 or 60. Roll-ups no
longer than the window (the simulator's 10 s) read exactly as before, alongside them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from queries.flag_series import SqlFlagSeries
from queries.sql import SqlMetrics
from tests.conftest import fresh_postgres_database

HOUR_END = datetime(2026, 12, 2, 17, tzinfo=UTC)
ENV = "production"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield from _filled(f"sqlite:///{tmp_path / 'metrics.db'}")
        return
    with fresh_postgres_database("rollout_hourly") as url:
        yield from _filled(url)


def _filled(url: str) -> Iterator[Engine]:
    engine = open_database(url)
    hourly = [
        # 3,600 on and 7,200 off in the hour before HOUR_END, 360 of them errors
        EvaluationRollup(
            HOUR_END - timedelta(hours=1),
            3600.0,
            ENV,
            "hourly",
            "on",
            "split",
            3600,
            errors=360,
            origin="unleash:app",
        ),
        EvaluationRollup(
            HOUR_END - timedelta(hours=1),
            3600.0,
            ENV,
            "hourly",
            "off",
            "split",
            7200,
            origin="unleash:app",
        ),
    ]
    # 2 a second in 10 s roll-ups over the 10 minutes around HOUR_END, 1 in 10 an error
    start = HOUR_END - timedelta(minutes=5)
    short = [
        EvaluationRollup(
            start + timedelta(seconds=10 * i), 10.0, ENV, "short", "on", "split", 20, errors=2
        )
        for i in range(60)
    ]
    insert_rollups(engine, hourly + short)
    yield engine
    engine.dispose()


def test_rates_over_a_window_shorter_than_the_hour(engine: Engine) -> None:
    metrics = SqlMetrics(engine)
    at = HOUR_END + timedelta(minutes=1)
    rates = metrics.evaluation_rates(ENV, timedelta(minutes=5), at)
    got = {(f, v): round(r, 6) for f, v, r in rates.itertuples(index=False)}
    assert got == {("hourly", "on"): 1.0, ("hourly", "off"): 2.0, ("short", "on"): 2.0}
    errors = metrics.error_rates(ENV, timedelta(minutes=5), at)
    assert {f: round(r, 6) for f, r in errors.itertuples(index=False)} == {
        "hourly": 0.1,
        "short": 0.2,
    }


def test_rates_over_whole_hours_are_unchanged(engine: Engine) -> None:
    rates = SqlMetrics(engine).evaluation_rates(ENV, timedelta(hours=1), HOUR_END)
    got = {(f, v): round(r, 6) for f, v, r in rates.itertuples(index=False)}
    # the short roll-ups of the last 5 minutes of the hour: 600 evaluations in 3,600 s
    assert got == {("hourly", "on"): 1.0, ("hourly", "off"): 2.0, ("short", "on"): round(1 / 6, 6)}


def test_a_one_minute_step_shows_the_hour_at_its_average_rate(engine: Engine) -> None:
    start, step = HOUR_END - timedelta(minutes=10), timedelta(minutes=1)
    end = HOUR_END + timedelta(minutes=10)
    sparklines = SqlMetrics(engine).evaluation_sparklines(ENV, start, end, step)
    hourly = sparklines[sparklines["flag"] == "hourly"]
    assert list(hourly["timestamp"]) == [HOUR_END]
    assert list(hourly["evaluations_per_second"]) == [pytest.approx(3.0)]
    short = sparklines[sparklines["flag"] == "short"]
    assert len(short) == 10 and set(short["evaluations_per_second"].round(6)) == {2.0}

    series = SqlFlagSeries(engine)
    variants = series.variant_rates(ENV, "hourly", start, end, step)
    at_end = variants[variants["timestamp"] == HOUR_END]
    assert dict(zip(at_end["variant"], at_end["evaluations_per_second"].round(6), strict=True)) == {
        "on": 1.0,
        "off": 2.0,
    }
    errors = series.error_rates(ENV, "hourly", start, end, step)
    assert list(errors[errors["timestamp"] == HOUR_END]["errors_per_second"].round(6)) == [0.1]
    one = series.variant_rate(ENV, "hourly", "off", start, end, step)
    assert list(one[one["timestamp"] == HOUR_END]["evaluations_per_second"].round(6)) == [2.0]
