"""Pure analysis behind the flag detail: exposure and sample-ratio mismatch, time to
mitigate, how long a flag has sat at one step, the next scheduled step, propagation.

Nothing here asks a source or imports Streamlit: the same inputs give the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from scipy import stats

from app.flags.model import FlagState, GradualStep, Rollout, RolloutStrategy

__all__ = [
    "DEFAULT_STUCK_AFTER",
    "EXPOSURE_TOLERANCE",
    "MIN_EXPOSURE_WINDOW",
    "SETTLING_TIME",
    "SRM_P_VALUE",
    "AppliedChange",
    "ExposureCheck",
    "ExposureWindow",
    "Propagation",
    "StepAge",
    "exposure_check",
    "exposure_window",
    "next_gradual_step",
    "propagation",
    "step_age",
    "stuck",
    "time_to_mitigate",
    "time_to_target_share",
]

#: p below this: the observed split is not the configured one (sample ratio mismatch)
SRM_P_VALUE = 0.001
#: the observed share may differ from the configured one by this much (absolute, 0..1),
#: as the exposure guard allows (`GuardPolicy.exposure_tolerance`)
EXPOSURE_TOLERANCE = 0.02
#: after a change, exposure is "settling" this long: counts straddling the change mix
#: the old split with the new one
SETTLING_TIME = timedelta(minutes=1)
#: exposure is never judged on less than this (a change seconds ago has no counts)
MIN_EXPOSURE_WINDOW = timedelta(seconds=15)
#: a flag in `rollout` at the same step for longer than this is stuck
DEFAULT_STUCK_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class ExposureCheck:
    """Configured vs observed share of the rollout variant among the split-decided
    evaluations (shares 0..1), with the chi-square goodness-of-fit test behind `mismatch`.
    `chi2` and `p_value` are None at 0 % and 100 %, where any stray evaluation is one."""

    configured: float
    observed: float
    treated: float
    total: float
    chi2: float | None
    p_value: float | None
    mismatch: bool


def exposure_check(
    treated: float, baseline: float, configured_percentage: float, srm_p_value: float = SRM_P_VALUE
) -> ExposureCheck | None:
    """Observed exposure from split-decided counts (`treated` on the rollout variant,
    `baseline` on the default), tested as the exposure guard does: scipy's chi-square
    goodness of fit of [treated, baseline] against the configured split, a mismatch
    when p < `srm_p_value`. None when there is no split evaluation to judge."""
    total = treated + baseline
    if total <= 0:
        return None
    expected = configured_percentage / 100
    observed = treated / total
    if 0 < expected < 1:
        chi2, p = stats.chisquare([treated, baseline], [total * expected, total * (1 - expected)])
        return ExposureCheck(
            expected, observed, treated, total, float(chi2), float(p), float(p) < srm_p_value
        )
    return ExposureCheck(expected, observed, treated, total, None, None, observed != expected)


@dataclass(frozen=True)
class ExposureWindow:
    """Which evaluations exposure counts: the last `length` (never from before the
    newest change, `since`); `settling` while that change is too recent to judge."""

    length: timedelta
    since: datetime | None
    settling: bool


def exposure_window(
    range_length: timedelta,
    changed_at: datetime | None,
    now: datetime,
    settling_time: timedelta = SETTLING_TIME,
) -> ExposureWindow:
    """Count only evaluations made under the current config: from `changed_at` (the
    newest applied change) when it is within `range_length`, in whole seconds, never
    less than `MIN_EXPOSURE_WINDOW`. Settling until `settling_time` after the change
    (when the time each instance loaded it is unknown, the change's time is the start;
    roll-ups and scrapes straddling it still mix the old split in)."""
    length = range_length
    if changed_at is not None:
        length = min(length, now - changed_at)
    length = max(MIN_EXPOSURE_WINDOW, timedelta(seconds=int(length.total_seconds())))
    if changed_at is None:
        return ExposureWindow(length, None, False)
    return ExposureWindow(length, changed_at, now - changed_at < settling_time)


def time_to_target_share(
    shares: Iterable[tuple[datetime, float]],
    action_at: datetime,
    target: float,
    tolerance: float = EXPOSURE_TOLERANCE,
) -> timedelta | None:
    """After a partial rollback (5 → 1 %): time from `action_at` until the rollout
    variant's observed share (0..1) came within `tolerance` of `target` and stayed there
    for the rest of the series. None when it is not (yet) there at the last point."""
    points = sorted((at, float(v)) for at, v in shares if at > action_at and math.isfinite(v))
    reached_at: datetime | None = None
    for at, share in points:
        # drifting back out of the tolerance restarts the wait
        reached_at = (reached_at or at) if abs(share - target) <= tolerance else None
    return None if reached_at is None else reached_at - action_at


def time_to_mitigate(
    series: Iterable[tuple[datetime, float]],
    action_at: datetime,
    threshold: float = 0.01,
    before_window: timedelta = timedelta(minutes=5),
) -> timedelta | None:
    """Time from `action_at` until the rate fell below `threshold` times its rate before and
    stayed below for the rest of the series. The rate before is the mean of the points
    in (action_at - before_window, action_at]. None when there was no rate before, or the
    rate is not (yet) below at the last point after the action."""
    points = sorted((at, float(value)) for at, value in series if math.isfinite(value))
    before = [v for at, v in points if action_at - before_window < at <= action_at]
    after = [(at, v) for at, v in points if at > action_at]
    if not before or not after:
        return None
    reference = sum(before) / len(before)
    if reference <= 0:
        return None
    limit = threshold * reference
    fell_at: datetime | None = None
    for at, value in after:
        # a rise back above the limit restarts the wait
        fell_at = (fell_at or at) if value < limit else None
    return None if fell_at is None else fell_at - action_at


class AppliedChange(Protocol):
    """What `step_age` reads from an applied audit entry (`AuditEntry` has it)."""

    @property
    def at(self) -> datetime: ...

    @property
    def to_percentage(self) -> float: ...


@dataclass(frozen=True)
class StepAge:
    """How long a flag has been at its step. `since` is None when no applied change is
    recorded; `stuck` is true only for a partial rollout older than the limit."""

    percentage: float
    since: datetime | None
    age: timedelta | None
    stuck: bool
    limit: timedelta


def step_age(
    state: FlagState,
    percentage: float,
    changes: Sequence[AppliedChange],
    now: datetime,
    limit: timedelta = DEFAULT_STUCK_AFTER,
) -> StepAge:
    """The age of the current step from the newest applied change in `changes`; a flag
    in `rollout` strictly between 0 and 100 % older than `limit` is stuck."""
    newest = max(changes, key=lambda change: change.at, default=None)
    if newest is None:
        return StepAge(percentage, None, None, False, limit)
    age = now - newest.at
    partial = state is FlagState.ROLLOUT and 0 < percentage < 100
    return StepAge(percentage, newest.at, age, partial and age > limit, limit)


def stuck(
    state: FlagState,
    percentage: float,
    changes: Sequence[AppliedChange],
    now: datetime,
    limit: timedelta = DEFAULT_STUCK_AFTER,
) -> bool:
    """Whether the flag has sat at one partial step longer than `limit` (see `step_age`)."""
    return step_age(state, percentage, changes, now, limit).stuck


def next_gradual_step(rollout: Rollout, now: datetime) -> GradualStep | None:
    """The first scheduled step of a `gradual` rollout still to come after `now`."""
    if rollout.strategy is not RolloutStrategy.GRADUAL:
        return None
    upcoming = [step for step in rollout.schedule if step.at > now]
    return min(upcoming, key=lambda step: step.at, default=None)


class Propagation(NamedTuple):
    """`loaded` of `total` instances report the wanted config version; `laggards` are
    the others, sorted."""

    loaded: int
    total: int
    laggards: tuple[str, ...]


def propagation(instance_versions: Mapping[str, str], wanted: str) -> Propagation:
    """How many instances (instance → loaded version) have loaded `wanted`."""
    laggards = tuple(sorted(i for i, v in instance_versions.items() if v != wanted))
    total = len(instance_versions)
    return Propagation(total - len(laggards), total, laggards)
