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
    "SRM_P_VALUE",
    "AppliedChange",
    "ExposureCheck",
    "Propagation",
    "StepAge",
    "exposure_check",
    "next_gradual_step",
    "propagation",
    "step_age",
    "stuck",
    "time_to_mitigate",
]

#: p below this: the observed split is not the configured one (sample ratio mismatch)
SRM_P_VALUE = 0.001
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
