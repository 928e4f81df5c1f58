"""Planned vs actual and the burn-up of the phases, from a config and a history whose
numbers are worked out by hand below."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.analysis.phase_history import (
    AppliedChange,
    BurnUpPoint,
    ScheduleStatus,
    applied_changes,
    blocked_reasons,
    burn_up,
    phase_schedule,
    project_start,
)
from app.audit import AuditEntry, Outcome
from app.flags.loader import load_config

CONFIG = """
version: "1"
phases:
  - {number: 1, name: Config, planned_week: 1}
  - {number: 2, name: Health, planned_week: 2}
  - {number: 3, name: Metrics, planned_week: 3}
flags:
  a1:
    state: enabled
    metadata: {phase: 1}
  a2:
    state: rollout
    rollout: {percentage: 100}
    metadata: {phase: 1}
  b1:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 2}
  b2:
    state: disabled
    metadata: {phase: 2, dependencies: [a1]}
  c1:
    state: disabled
    metadata: {phase: 3, dependencies: [b1]}
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
NOW = T0 + timedelta(days=14)  # 2026-03-16


def _entry(days, flag, before, after, outcome=Outcome.APPLIED, env="production", state=None):
    return AuditEntry(
        at=T0 + timedelta(days=days),
        actor="ops",
        action="advance",
        flag=flag,
        environment=env,
        from_state="rollout",
        from_percentage=before,
        to_state=state or "rollout",
        to_percentage=after,
        reason="test",
        outcome=outcome,
    )


HISTORY = [
    _entry(-5, "b1", 0, 10, env="staging"),  # another environment: ignored
    _entry(0, "a1", 0, 10),  # phase 1 starts
    _entry(1, "a2", 0, 50),
    _entry(2, "a1", 10, 100, state="enabled"),
    _entry(3, "a2", 50, 100, outcome=Outcome.FAILED),  # not applied: ignored
    _entry(4, "a2", 50, 100),  # phase 1 complete ...
    _entry(5, "b1", 0, 25),  # phase 2 starts
    _entry(6, "a2", 100, 50),  # ... rolled back ...
    _entry(7, "a2", 50, 100),  # ... and complete again: this is its finish
    _entry(8, "b1", 25, 60, outcome=Outcome.PENDING),  # ignored
    _entry(9, "b1", 25, 50),
]


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    return load_config(path, "production")


@pytest.fixture
def changes():
    return applied_changes(list(reversed(HISTORY)), "production")  # newest first, as read


def test_only_applied_changes_of_the_environment_oldest_first(changes):
    assert [c.at for c in changes] == [T0 + timedelta(days=d) for d in (0, 1, 2, 4, 5, 6, 7, 9)]
    assert changes[2] == AppliedChange(T0 + timedelta(days=2), "a1", 10.0, 100.0)


def test_a_state_change_counts_as_its_effective_percentage():
    killed = _entry(1, "a1", 50, 50, state="disabled")
    enabled = _entry(2, "a1", 0, 0, state="enabled")
    found = applied_changes([killed, enabled], "production")
    assert [c.to_percentage for c in found] == [0.0, 100.0]


def test_naive_times_are_utc():
    naive = _entry(0, "a1", 0, 10)
    naive = AuditEntry(**{**naive.__dict__, "at": T0.replace(tzinfo=None)})
    assert applied_changes([naive], "production")[0].at == T0


def test_project_starts_at_the_first_applied_change_or_today(changes):
    assert project_start(changes, today=date(2026, 4, 1)) == date(2026, 3, 2)
    assert project_start([], today=date(2026, 4, 1)) == date(2026, 4, 1)


def test_planned_vs_actual(config, changes):
    rows = {row.phase: row for row in phase_schedule(config, changes, NOW)}
    first, second, third = rows[1], rows[2], rows[3]

    assert (first.planned_start, first.planned_finish) == (date(2026, 3, 2), date(2026, 3, 8))
    assert first.actual_start == T0
    assert first.actual_finish == T0 + timedelta(days=7)  # the last completion counts
    assert first.status is ScheduleStatus.LATE and first.days_late == 1  # 9 March vs 8 March

    assert (second.planned_start, second.planned_finish) == (date(2026, 3, 9), date(2026, 3, 15))
    assert second.actual_start == T0 + timedelta(days=5)
    assert second.actual_finish is None
    assert second.status is ScheduleStatus.OVERDUE and second.days_late == 1  # 16 vs 15 March

    assert (third.planned_start, third.planned_finish) == (date(2026, 3, 16), date(2026, 3, 22))
    assert (third.actual_start, third.actual_finish) == (None, None)
    assert third.status is ScheduleStatus.NOT_DUE and third.days_late == 0


def test_finished_in_its_week_is_on_time(config, changes):
    early = [c for c in changes if c.at <= T0 + timedelta(days=4)]
    row = phase_schedule(config, early, T0 + timedelta(days=4))[0]
    assert row.actual_finish == T0 + timedelta(days=4)
    assert row.status is ScheduleStatus.ON_TIME and row.days_late == 0


def test_a_phase_rolled_back_below_100_is_not_finished(config, changes):
    until_rollback = [c for c in changes if c.at <= T0 + timedelta(days=6)]
    row = phase_schedule(config, until_rollback, T0 + timedelta(days=6))[0]
    assert row.actual_start == T0 and row.actual_finish is None


def test_without_history_planned_weeks_count_from_today(config):
    rows = phase_schedule(config, [], NOW)
    assert rows[0].planned_start == date(2026, 3, 16)
    assert all(r.actual_start is None and r.actual_finish is None for r in rows)


def _series(points, phase):
    return [(p.at, p.progress, p.flags_complete) for p in points if p.phase == phase]


def test_burn_up_replays_every_applied_change(config, changes):
    points = burn_up(config, changes, NOW)
    day = timedelta(days=1)
    assert _series(points, 1) == [
        (T0, 0.0, 0),  # the first known state: both flags at their first `from`, 0 %
        (T0, pytest.approx(0.05), 0),
        (T0 + day, pytest.approx(0.30), 0),
        (T0 + 2 * day, pytest.approx(0.75), 1),
        (T0 + 4 * day, pytest.approx(1.0), 2),
        (T0 + 6 * day, pytest.approx(0.75), 1),
        (T0 + 7 * day, pytest.approx(1.0), 2),
        (NOW, pytest.approx(1.0), 2),
    ]
    assert _series(points, 2) == [
        (T0, 0.0, 0),
        (T0 + 5 * day, pytest.approx(0.125), 0),
        (T0 + 9 * day, pytest.approx(0.25), 0),
        (NOW, pytest.approx(0.25), 0),
    ]
    assert _series(points, 3) == [(T0, 0.0, 0), (NOW, 0.0, 0)]
    assert points[0] == BurnUpPoint(T0, 1, "Config", 0.0, 0, 2)


def test_burn_up_ends_at_the_configuration_as_it_is_now(config):
    # b1 was moved to 50 % outside the dashboard: the present shows the config's 50 %.
    partial = [AppliedChange(T0, "b1", 0.0, 25.0)]
    second = _series(burn_up(config, partial, NOW), 2)
    assert second == [
        (T0, 0.0, 0),
        (T0, pytest.approx(0.125), 0),
        (NOW, pytest.approx(0.25), 0),
    ]


def test_burn_up_without_history_is_the_present_alone(config):
    points = burn_up(config, [], NOW)
    assert [(p.phase, p.at, p.progress) for p in points] == [
        (1, NOW, pytest.approx(1.0)),
        (2, NOW, pytest.approx(0.25)),
        (3, NOW, 0.0),
    ]


def test_blocked_reasons_name_the_dependency_its_phase_and_percentage(config):
    assert blocked_reasons(config) == {3: ("c1 waits for b1 (phase 2, at 50 %)",)}


def test_a_refused_advance_is_a_reason_until_a_newer_action(config):
    refused = AuditEntry(
        **{
            **_entry(10, "b1", 50, 100, outcome=Outcome.REFUSED).__dict__,
            "guards": [
                {"name": "error_rate", "passed": False},
                {"name": "soak_time", "passed": True},
            ],
        }
    )
    reasons = blocked_reasons(config, [*HISTORY, refused], "production")
    assert reasons[2] == ("b1: advance to 100 % refused on 2026-03-12 (failed guard: error_rate)",)
    assert 1 not in reasons  # complete phases have nothing to wait for
    later = _entry(11, "b1", 50, 50)
    assert 2 not in blocked_reasons(config, [refused, later], "production")
    assert 2 not in blocked_reasons(config, [refused], "staging")


def test_an_advance_waiting_for_approval_is_a_reason_until_decided(config):
    asked = AuditEntry(
        **{
            **_entry(10, "b1", 50, 100, outcome=Outcome.REQUESTED).__dict__,
            "actor": "alice",
            "reason": "request #7: steady",
        }
    )
    reasons = blocked_reasons(config, [*HISTORY, asked], "production")
    assert reasons[2] == ("b1: advance to 100 % waits for approval (request #7 by alice)",)
    rejected = AuditEntry(
        **{**asked.__dict__, "outcome": Outcome.REJECTED, "at": asked.at + timedelta(hours=1)}
    )
    assert 2 not in blocked_reasons(config, [*HISTORY, asked, rejected], "production")
