"""Exposure and sample-ratio mismatch, time to mitigate, step age, the next gradual step
and propagation, computed from known inputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.analysis.exposure import (
    ExposureWindow,
    exposure_check,
    exposure_window,
    next_gradual_step,
    propagation,
    step_age,
    stuck,
    time_to_mitigate,
    time_to_target_share,
)
from app.flags.model import FlagState, GradualStep, Rollout, RolloutStrategy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_thirteen_percent_observed_at_ten_configured_is_a_sample_ratio_mismatch():
    check = exposure_check(treated=1300, baseline=8700, configured_percentage=10)
    assert check is not None
    assert check.observed == pytest.approx(0.13)
    assert check.configured == pytest.approx(0.10)
    # (1300 - 1000)² / 1000 + (8700 - 9000)² / 9000
    assert check.chi2 == pytest.approx(100.0)
    assert check.p_value is not None and check.p_value < 1e-20
    assert check.mismatch


def test_a_split_close_to_the_configured_one_is_not_flagged():
    check = exposure_check(treated=1010, baseline=8990, configured_percentage=10)
    assert check is not None
    assert check.chi2 == pytest.approx(100 / 1000 + 100 / 9000)
    assert check.p_value == pytest.approx(0.7389, abs=1e-3)
    assert not check.mismatch


def test_exposure_at_zero_percent_is_an_exact_check_and_no_counts_is_none():
    leaking = exposure_check(treated=3, baseline=997, configured_percentage=0)
    assert leaking is not None and leaking.mismatch and leaking.p_value is None
    clean = exposure_check(treated=0, baseline=1000, configured_percentage=0)
    assert clean is not None and not clean.mismatch
    assert exposure_check(0, 0, 10) is None


def _series(drop_at: datetime, before: float = 10 / 15) -> list[tuple[datetime, float]]:
    """A point every 15 s from 10 min before the drop to 10 min after it."""
    points = []
    for index in range(-40, 41):
        at = drop_at + timedelta(seconds=15 * index)
        points.append((at, before if at <= drop_at else 0.0))
    return points


def test_time_to_mitigate_is_the_first_point_below_one_percent_of_before():
    action = NOW
    drop = action + timedelta(seconds=45)
    # the point at drop + 15 s is the first whose step holds no evaluation
    assert time_to_mitigate(_series(drop), action) == timedelta(seconds=60)


def test_a_rise_after_the_first_drop_restarts_the_wait():
    action = NOW
    points = _series(action + timedelta(seconds=30))
    blip_at = action + timedelta(minutes=2)
    points = [(at, 0.5 if at == blip_at else value) for at, value in points]
    assert time_to_mitigate(points, action) == timedelta(minutes=2, seconds=15)


def test_a_rate_that_only_halves_is_not_mitigated_and_no_rate_before_is_unmeasurable():
    action = NOW
    halved = [(at, value if at <= action else 1 / 3) for at, value in _series(action)]
    assert time_to_mitigate(halved, action) is None
    silent = [(at, 0.0) for at, _ in _series(action)]
    assert time_to_mitigate(silent, action) is None
    assert time_to_mitigate([], action) is None


def test_a_rate_just_under_the_threshold_counts_as_mitigated():
    action = NOW
    points = [(at, 1.0 if at <= action else 0.0099) for at, _ in _series(action)]
    assert time_to_mitigate(points, action) == timedelta(seconds=15)
    points = [(at, 1.0 if at <= action else 0.01) for at, _ in _series(action)]
    assert time_to_mitigate(points, action) is None


@dataclass(frozen=True)
class Change:
    at: datetime
    to_percentage: float


def test_a_partial_rollout_older_than_seven_days_is_stuck():
    changes = [Change(NOW - timedelta(days=20), 10), Change(NOW - timedelta(days=8), 25)]
    age = step_age(FlagState.ROLLOUT, 25, changes, NOW)
    assert age.since == NOW - timedelta(days=8)
    assert age.age == timedelta(days=8)
    assert age.stuck
    assert stuck(FlagState.ROLLOUT, 25, changes, NOW)


def test_a_recent_step_a_finished_rollout_or_no_history_is_not_stuck():
    recent = [Change(NOW - timedelta(days=6, hours=23), 25)]
    assert not stuck(FlagState.ROLLOUT, 25, recent, NOW)
    old = [Change(NOW - timedelta(days=30), 100)]
    assert not stuck(FlagState.ENABLED, 100, old, NOW)
    assert not stuck(FlagState.ROLLOUT, 100, old, NOW)
    assert step_age(FlagState.ROLLOUT, 25, [], NOW).since is None
    assert stuck(FlagState.ROLLOUT, 25, recent, NOW, limit=timedelta(days=1))


def test_the_next_gradual_step_is_the_first_still_to_come():
    schedule = (
        GradualStep(at=NOW + timedelta(days=2), percentage=50),
        GradualStep(at=NOW - timedelta(days=1), percentage=10),
        GradualStep(at=NOW + timedelta(hours=3), percentage=25),
    )
    rollout = Rollout(strategy=RolloutStrategy.GRADUAL, percentage=5, schedule=schedule)
    step = next_gradual_step(rollout, NOW)
    assert step is not None
    assert (step.at, step.percentage) == (NOW + timedelta(hours=3), 25)
    assert next_gradual_step(rollout, NOW + timedelta(days=3)) is None
    assert next_gradual_step(Rollout(percentage=5), NOW) is None


def test_propagation_counts_instances_on_the_wanted_version_and_names_the_laggards():
    versions = {"web-3": "1+aaa", "web-1": "1+bbb", "web-2": "1+bbb", "api-1": "0+old"}
    loaded, total, laggards = propagation(versions, "1+bbb")
    assert (loaded, total) == (2, 4)
    assert laggards == ("api-1", "web-3")
    assert propagation({}, "1+bbb") == (0, 0, ())


# -- settling: exposure counts only evaluations under the current config -------------

CHANGE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_exposure_counts_from_the_change_and_settles_for_a_minute():
    hour = timedelta(hours=1)
    seconds = timedelta(seconds=1)
    assert exposure_window(hour, CHANGE, CHANGE + 59 * seconds) == ExposureWindow(
        59 * seconds, CHANGE, True
    )
    assert exposure_window(hour, CHANGE, CHANGE + 60 * seconds) == ExposureWindow(
        60 * seconds, CHANGE, False
    )


def test_an_old_change_or_none_leaves_the_whole_range_and_never_less_than_15_s():
    range_length = timedelta(minutes=15)
    assert exposure_window(range_length, CHANGE, CHANGE + timedelta(days=1)).length == range_length
    assert exposure_window(range_length, None, CHANGE) == ExposureWindow(range_length, None, False)
    just_now = exposure_window(range_length, CHANGE, CHANGE + timedelta(seconds=2))
    assert just_now.length == timedelta(seconds=15) and just_now.settling


# -- time to mitigate after a partial rollback: the share reaches the new target ------


def _shares(*values: float) -> list[tuple[datetime, float]]:
    return [(CHANGE + timedelta(seconds=15 * i), v) for i, v in enumerate(values)]


def test_a_partial_rollback_is_mitigated_when_the_share_reaches_the_target():
    # 5 % before, then 5 → 1 %: 4.9 %, 3.1 %, 2.9 %, 1.2 %
    shares = _shares(0.05, 0.049, 0.031, 0.029, 0.012)
    assert time_to_target_share(shares, CHANGE, 0.01, 0.02) == timedelta(seconds=45)


def test_the_tolerance_boundary_counts_as_reached():
    shares = _shares(0.05, 0.04, 0.03)
    assert time_to_target_share(shares, CHANGE, 0.01, 0.02) == timedelta(seconds=30)


def test_a_share_that_drifts_back_out_restarts_and_one_never_there_is_none():
    assert time_to_target_share(_shares(0.05, 0.01, 0.05, 0.02), CHANGE, 0.01, 0.02) == (
        timedelta(seconds=45)
    )
    assert time_to_target_share(_shares(0.05, 0.049, 0.048), CHANGE, 0.01, 0.02) is None
    assert time_to_target_share(_shares(0.05), CHANGE, 0.01, 0.02) is None  # nothing after
