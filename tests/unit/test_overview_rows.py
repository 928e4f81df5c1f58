from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from app.analysis.health import Health, HealthThresholds
from app.flags.loader import load_config
from app.flags.model import FlagState
from app.services.overview import OverviewFilter, build_overview_rows, filter_rows
from app.ui.overview_table import overview_display_frame
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import (
    ERROR_RATE_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    LATENCY_COLUMNS,
    SPARKLINE_COLUMNS,
    empty_frame,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = """
version: "1"
flags:
  calm:
    state: rollout
    rollout: {percentage: 25}
    metadata: {phase: 1, description: "steady flag"}
  noisy:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 2}
  slow:
    state: enabled
    metadata: {phase: 1}
  idle:
    state: disabled
  changed:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 3, description: "recently moved"}
"""


@pytest.fixture
def rows(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    rates = pd.DataFrame(
        [
            ("calm", "on", 10 / 15),
            ("calm", "off", 5 / 15),
            ("noisy", "on", 1.0),
            ("slow", "on", 2.0),
            ("changed", "on", 1.0),
            ("unconfigured", "on", 9.0),
        ],
        columns=["flag", "variant", "evaluations_per_second"],
    )
    errors = pd.DataFrame([("calm", 1 / 15), ("noisy", 0.2)], columns=["flag", "errors_per_second"])
    latency = pd.DataFrame(
        [("calm", 0.5, 0.0006), ("calm", 0.99, 0.0009), ("slow", 0.99, 0.3)],
        columns=["flag", "quantile", "seconds"],
    )
    spark = pd.DataFrame(
        [("calm", NOW - timedelta(minutes=m), float(m)) for m in (2, 1, 0)],
        columns=["flag", "timestamp", "evaluations_per_second"],
    )
    changes = pd.DataFrame(
        [
            ("changed", NOW - timedelta(hours=1), "alice", "advance", 5.0, 10.0),
            ("calm", NOW - timedelta(days=3), "bob", "advance", 10.0, 25.0),
        ],
        columns=list(LAST_CHANGE_COLUMNS),
    )
    built = build_overview_rows(
        load_config(path),
        rates,
        errors,
        latency,
        spark,
        changes,
        HealthThresholds(),
        NOW,
        timedelta(hours=24),
    )
    return built


def test_numbers_per_flag(rows):
    calm = next(r for r in rows if r.flag == "calm")
    assert calm.evaluations_per_second == pytest.approx(1.0)
    assert calm.variants == {"off": pytest.approx(1 / 3), "on": pytest.approx(2 / 3)}
    assert calm.error_rate == pytest.approx(1 / 15)
    assert calm.p50_seconds == pytest.approx(0.0006)
    assert calm.p99_seconds == pytest.approx(0.0009)
    assert calm.sparkline == (2.0, 1.0, 0.0)  # oldest first
    assert calm.health is Health.UNHEALTHY  # 6.7 % errors
    assert calm.last_change is not None and calm.last_change.actor == "bob"


def test_unhealthy_first_then_recently_changed_and_unconfigured_flags_ignored(rows):
    assert [r.flag for r in rows] == ["calm", "slow", "noisy", "changed", "idle"]
    assert [r.health for r in rows] == [
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.HEALTHY,
        Health.NO_DATA,
    ]


def test_status_json_fields(rows):
    document = next(r for r in rows if r.flag == "changed").as_json()
    assert document["state"] == "rollout"
    assert document["percentage"] == 10.0
    assert document["health"] == "healthy"
    assert document["last_change"]["actor"] == "alice"
    assert document["last_change"]["to_percentage"] == 10.0
    idle = next(r for r in rows if r.flag == "idle").as_json()
    assert idle["health"] == "no_data" and idle["error_rate"] is None and idle["variants"] == {}


def test_filters_combine(rows):
    assert [r.flag for r in filter_rows(rows, OverviewFilter(phases=frozenset({1})))] == [
        "calm",
        "slow",
    ]
    by_state = filter_rows(rows, OverviewFilter(states=frozenset({FlagState.DISABLED})))
    assert [r.flag for r in by_state] == ["idle"]
    assert [r.flag for r in filter_rows(rows, OverviewFilter(text="MOVED"))] == ["changed"]
    unhealthy_phase_2 = OverviewFilter(phases=frozenset({2}), health=frozenset({Health.UNHEALTHY}))
    assert [r.flag for r in filter_rows(rows, unhealthy_phase_2)] == ["noisy"]


def test_display_frame_formats_what_the_user_reads(rows):
    frame = overview_display_frame(rows, NOW).set_index("Flag")
    assert frame.loc["calm", "Evaluations"] == "1.00/s"
    assert frame.loc["calm", "Variant split"] == "on 67% · off 33%"
    assert frame.loc["calm", "Errors"] == "6.67 %"
    assert frame.loc["calm", "p99"] == "0.90 ms"
    assert frame.loc["calm", "Health"] == "🔴 unhealthy"
    assert frame.loc["changed", "Last change"] == "60 min ago · alice · 5 → 10 %"
    assert frame.loc["idle", "Errors"] == "–"


def test_no_data_anywhere_gives_every_flag_no_data(tmp_path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    rows = build_overview_rows(
        load_config(path),
        empty_frame(EVALUATION_RATE_COLUMNS),
        empty_frame(ERROR_RATE_COLUMNS),
        empty_frame(LATENCY_COLUMNS),
        empty_frame(SPARKLINE_COLUMNS),
        empty_frame(LAST_CHANGE_COLUMNS),
        HealthThresholds(),
        NOW,
        timedelta(hours=1),
    )
    assert {r.health for r in rows} == {Health.NO_DATA}
