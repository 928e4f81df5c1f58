"""The overview never calls a flag healthy while its treatment fails significantly more
than its control, even below every error threshold (issue 8 §5), on real SQLite data:
proven worse at the treatment-vs-control gate's level (issue 21)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.analysis.health import Health, HealthThresholds
from app.flags.loader import load_config
from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from app.services.overview import load_overview
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import empty_frame
from queries.sql import SqlMetrics

END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FLAGS = """
version: "1"
flags:
  gamma:
    state: rollout
    rollout: {percentage: 20}
  delta:
    state: rollout
    rollout: {percentage: 20}
"""
#: per 15 s interval: (flag, variant, reason, evaluations); failed ones carry `error`.
#: gamma: on 0.9 % vs off 0.2 % (overall 0.34 %, under the 1 % threshold), significant.
#: delta: on 0.2 % vs off 0.2 %: nothing to say.
SHAPE = [
    ("gamma", "on", "split", 991),
    ("gamma", "on", "error", 9),
    ("gamma", "off", "split", 3992),
    ("gamma", "off", "error", 8),
    ("delta", "on", "split", 998),
    ("delta", "on", "error", 2),
    ("delta", "off", "split", 3992),
    ("delta", "off", "error", 8),
]


def _rollups() -> list[EvaluationRollup]:
    return [
        EvaluationRollup(
            interval_start=END - timedelta(seconds=15 * index),
            interval_seconds=15,
            environment="production",
            flag=flag,
            variant=variant,
            reason=reason,
            evaluations=n,
            errors=n if reason == "error" else 0,
        )
        for index in range(1, 21)
        for flag, variant, reason, n in SHAPE
    ]


def test_a_significantly_worse_treatment_is_not_healthy_below_every_threshold(tmp_path: Path):
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    insert_rollups(engine, _rollups())
    overview = load_overview(
        config=load_config(tmp_path / "feature_flags.yaml", "production"),
        environment="production",
        sources=[SqlMetrics(engine)],
        changes=empty_frame(LAST_CHANGE_COLUMNS),
        thresholds=HealthThresholds(),
        window=timedelta(minutes=5),
        sparkline_span=timedelta(minutes=30),
        at=END,
        recent=timedelta(hours=24),
    )
    rows = {row.flag: row for row in overview.rows}
    gamma, delta = rows["gamma"], rows["delta"]
    assert gamma.error_rate is not None and round(100 * gamma.error_rate, 2) == 0.34
    assert gamma.health is Health.DEGRADED
    assert any(reason.endswith(": proven worse") for reason in gamma.reasons)
    assert gamma.error_window == "last 5 min"
    assert delta.health is Health.HEALTHY and delta.reasons == ()
    assert overview.rows[0].flag == "gamma"  # the degraded flag sorts first
