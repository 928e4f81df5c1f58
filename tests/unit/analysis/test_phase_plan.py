"""The phase plan from the config (issue 8 §6): planned dates from `phases.start`, the
actual start rule when the history begins late, and live health as a blocker."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.analysis.health import Health
from app.analysis.phase_history import (
    AppliedChange,
    FlagCondition,
    StartSource,
    blocked_reasons,
    phase_schedule,
    resolve_project_start,
)
from app.flags.loader import ConfigInvalid, load_config
from app.flags.model import FlagConfig

PHASES_WITH_START = """
version: "1"
phases:
  start: 2026-01-05
  list:
    - {number: 1, name: Config, planned_week: 1}
    - {number: 2, name: Health, planned_week: 3}
flags:
  a1:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 1}
  a2:
    state: disabled
    metadata: {phase: 1}
  b1:
    state: disabled
    metadata: {phase: 2, dependencies: [a1]}
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _config(tmp_path: Path, text: str = PHASES_WITH_START) -> FlagConfig:
    path = tmp_path / "feature_flags.yaml"
    path.write_text(text)
    return load_config(path, "production")


def test_planned_dates_count_from_the_configured_start_not_the_history(tmp_path):
    config = _config(tmp_path)
    assert config.phases_start == date(2026, 1, 5)
    history = [AppliedChange(T0, "a1", 0.0, 10.0)]  # the first change is in March
    first, second = phase_schedule(config, history, T0)
    assert (first.planned_start, first.planned_finish) == (date(2026, 1, 5), date(2026, 1, 11))
    # planned_week 3 → the third week from the start
    assert (second.planned_start, second.planned_finish) == (date(2026, 1, 19), date(2026, 1, 25))
    assert first.days_late == (T0.date() - date(2026, 1, 11)).days


def test_the_start_says_where_it_came_from():
    change = AppliedChange(T0, "a1", 0.0, 10.0)
    today = date(2026, 4, 1)
    assert resolve_project_start([change], today, date(2026, 1, 5)).source is StartSource.CONFIG
    assert resolve_project_start([change], today, None).day == T0.date()
    assert resolve_project_start([change], today, None).source is StartSource.HISTORY
    assert resolve_project_start([], today, None).source is StartSource.TODAY


def test_a_plain_list_of_phases_is_still_valid(tmp_path):
    old = PHASES_WITH_START.replace("  start: 2026-01-05\n  list:\n", "").replace(
        "    - {", "  - {"
    )
    config = _config(tmp_path, old)
    assert config.phases_start is None
    assert [p.number for p in config.phases] == [1, 2]


def test_an_unknown_key_in_the_phases_mapping_is_refused(tmp_path):
    bad = PHASES_WITH_START.replace("start: 2026-01-05", "begin: 2026-01-05")
    with pytest.raises(ConfigInvalid, match="begin"):
        _config(tmp_path, bad)


def test_the_start_survives_the_sql_backend_round_trip(tmp_path):
    config = _config(tmp_path)
    document = config.model_dump(mode="json", by_alias=True)
    assert FlagConfig.model_validate(document).phases_start == date(2026, 1, 5)


def test_actual_start_is_the_first_change_above_zero(tmp_path):
    config = _config(tmp_path)
    history = [
        AppliedChange(T0, "a2", 0.0, 5.0),
        AppliedChange(T0 - timedelta(days=1), "a1", 0.0, 10.0),
    ]
    history.sort(key=lambda c: c.at)
    first = phase_schedule(config, history, T0)[0]
    assert first.actual_start == T0 - timedelta(days=1)
    assert not first.started_before_history


def test_a_flag_above_zero_before_its_first_change_started_before_the_history(tmp_path):
    config = _config(tmp_path)
    history = [AppliedChange(T0, "a1", 5.0, 10.0)]  # a1 was already at 5 %
    first, second = phase_schedule(config, history, T0)
    assert first.started_before_history and first.actual_start is None
    assert not second.started_before_history and second.actual_start is None


def test_without_history_the_config_counts(tmp_path):
    config = _config(tmp_path)  # a1 is at 10 % with no recorded change
    first, second = phase_schedule(config, [], T0)
    assert first.started_before_history and first.actual_start is None
    assert not second.started_before_history  # b1 is disabled: not started


def test_unhealthy_flags_and_failing_error_guards_are_blockers(tmp_path):
    config = _config(tmp_path)
    conditions = {
        "a1": FlagCondition("a1", Health.UNHEALTHY, 0.064, 0.31),
        "a2": FlagCondition("a2", Health.HEALTHY, 0.002, 0.01),
    }
    reasons = blocked_reasons(config, (), "production", conditions, max_error_rate=0.01)
    assert "a1 is unhealthy (errors 6.40 %, p99 310 ms)" in reasons[1]
    assert "a1: the error guard fails (errors 6.40 % > 1 % allowed to advance)" in reasons[1]
    assert not any("a2" in r for r in reasons[1])
    # phase 2 is blocked by its dependency only, beside the health of phase 1
    assert reasons[2] == ("b1 waits for a1 (phase 1, at 10 %)",)


def test_a_disabled_flag_with_errors_is_not_an_error_guard_blocker(tmp_path):
    config = _config(tmp_path)
    conditions = {"a2": FlagCondition("a2", Health.DEGRADED, 0.02, None)}
    reasons = blocked_reasons(config, (), "production", conditions, max_error_rate=0.01)
    assert 1 not in reasons  # degraded is not a blocker; a2 is not being advanced


def test_a_complete_phase_has_no_health_blocker(tmp_path):
    disabled = "state: disabled\n    metadata: {phase: 1}"
    enabled = "state: enabled\n    metadata: {phase: 1}"
    text = PHASES_WITH_START.replace(disabled, enabled)
    text = text.replace("percentage: 10}", "percentage: 100}")
    config = _config(tmp_path, text)
    conditions = {"a1": FlagCondition("a1", Health.UNHEALTHY, 0.5, None)}
    assert 1 not in blocked_reasons(config, (), "production", conditions, 0.01)
