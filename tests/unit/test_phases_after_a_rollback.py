"""The Phases page after an emergency rollback switched off a phase that was under way
before the history began (issue 24): its status, its CSV start and its timeline bar."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.audit import AuditEntry, Outcome
from app.flags.loader import load_config
from app.services.phases import (
    BEFORE_HISTORY,
    build_phases,
    phase_table,
    phase_table_csv,
    timeline_frame,
)

CONFIG = """
version: "1"
phases:
  - {number: 1, name: Config, planned_week: 1}
  - {number: 2, name: Health, planned_week: 2}
flags:
  a1:
    state: disabled
    metadata: {phase: 1}
  a2:
    state: disabled
    metadata: {phase: 1}
  b1:
    state: disabled
    metadata: {phase: 2}
"""
KILLED_AT = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
NOW = KILLED_AT + timedelta(hours=2)


def _kill(flag: str, before: float) -> AuditEntry:
    return AuditEntry(
        at=KILLED_AT,
        actor="olga",
        action="emergency_rollback",
        flag=flag,
        environment="production",
        from_state="rollout",
        from_percentage=before,
        to_state="disabled",
        to_percentage=0.0,
        reason="incident",
        outcome=Outcome.APPLIED,
    )


def _view(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    config = load_config(path, "production")
    return build_phases(config, [_kill("a1", 10.0), _kill("a2", 5.0)], "production", NOW)


def test_a_phase_switched_off_after_it_started_is_stopped_not_not_started(tmp_path):
    table = phase_table(_view(tmp_path)).set_index("Phase")
    assert table.loc[1, "Actual start"] == "before the history"
    assert table.loc[1, "Status"] == "stopped: every flag at 0 %"
    assert table.loc[2, "Actual start"] == "–"
    assert table.loc[2, "Status"] == "not started"  # it never did


def test_the_csv_gives_the_bound_it_knows_instead_of_a_blank(tmp_path):
    rows = list(csv.DictReader(io.StringIO(phase_table_csv(_view(tmp_path)))))
    assert rows[0]["actual_start"] == "before 2026-03-03T09:00:00+00:00"
    assert rows[0]["status"] == "not_started"  # the machine-readable status is kept
    assert rows[1]["actual_start"] == ""


def test_the_timeline_draws_an_actual_bar_from_where_the_history_begins(tmp_path):
    frame = timeline_frame(_view(tmp_path))
    bars = {(row.Phase, row.Kind): (row.Start, row.Finish) for row in frame.itertuples()}
    assert bars[("1 · Config", BEFORE_HISTORY)] == (KILLED_AT, NOW)
    assert ("1 · Config", "planned") in bars
    assert [kind for phase, kind in bars if phase == "2 · Health"] == ["planned"]
