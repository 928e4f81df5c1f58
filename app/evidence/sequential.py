"""Tests that stay valid when looked at every tick (docs/design.md §8).

Every data-driven gate asks one question of counts of bad and total events: is the error
rate above its limit, is the treatment worse than control by more than allowed, is the
split off by more than the tolerance. Each is answered with an **e-value** by universal
inference (Wasserman, Ramdas & Balakrishnan, 2020):

    E = (likelihood averaged over a Jeffreys Beta(½, ½) prior on each rate)
        / (the likelihood maximised over the null hypothesis)

For every rate the null allows, E is at most a nonnegative martingale started at 1, so by
Ville's inequality the chance that E *ever* reaches 1/α — however often it is looked at,
on counts that only grow — is at most α. It is exact at small counts (no normal
approximation), depends on the cumulative counts only, and handles composite nulls
(a rate *at most* the limit; a difference *at most* the allowed increase, whatever the
control's rate) without a nuisance parameter to plug in.

A regression that starts hours into a step is diluted in the counts since the step
began, so a gate also watches windows that restart at later points (`Detector`): each
window is an e-process of its own, and a window crossing its threshold is a detection.
By the union bound, the expected number of false detections per day is at most the sum
of 1/threshold over the windows opened per day; the thresholds share a budget of false
actions per plan-day between the gates and the kinds of window (`thresholds`).

The model: the bad events of each arm are binomial given its totals (independent
evaluations or requests). Counts clustered more than that (a few users making most of
the requests) make the tests less conservative than stated; the benchmark
(`tests/bench/bench_sequential.py`) measures the rates on Poisson traffic.

Pure numerics on numpy arrays: every function takes counts as scalars or arrays of one
shape and answers element-wise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.special import betaln

__all__ = [
    "Arm",
    "Detection",
    "Detector",
    "Hypothesis",
    "Thresholds",
    "WindowKind",
    "difference_interval",
    "log_evalue",
    "thresholds",
]

Array = npt.NDArray[np.float64]
ArrayLike = float | int | Array

#: the Jeffreys prior Beta(½, ½) on each rate
PRIOR = 0.5
#: bisection steps of a restricted maximum likelihood (2^-60: below float precision)
_BISECTIONS = 60
_EDGE = 1e-12
#: the widest difference an interval is searched to (±1 leaves no rate for the control)
_WIDEST = 1 - 1e-6


class Hypothesis(StrEnum):
    """The null a gate tests; the gate acts when the evidence against it is strong."""

    RATE_AT_MOST = "rate_at_most"  # bad/total of one arm ≤ limit
    DIFFERENCE_AT_MOST = "difference_at_most"  # treatment − control ≤ limit (points)
    RATIO_AT_MOST = "ratio_at_most"  # treatment ≤ (1 + limit) × control
    SHARE_WITHIN = "share_within"  # |treatment share − configured| ≤ tolerance


@dataclass(frozen=True)
class Arm:
    """Bad events out of total events of one arm (or of the whole flag)."""

    bad: float
    total: float

    def __post_init__(self) -> None:
        if not 0 <= self.bad <= self.total:
            raise ValueError(f"counts must satisfy 0 ≤ bad ≤ total, got {self.bad}/{self.total}")

    @property
    def rate(self) -> float | None:
        return self.bad / self.total if self.total > 0 else None

    def __sub__(self, earlier: Arm) -> Arm:
        """The counts between an earlier cumulative reading and this one."""
        return Arm(max(self.bad - earlier.bad, 0.0), max(self.total - earlier.total, 0.0))


def _asarray(value: ArrayLike) -> Array:
    return np.asarray(value, dtype=np.float64)


def _loglik(bad: Array, total: Array, rate: Array) -> Array:
    """Binomial log-likelihood (without the binomial coefficient, which cancels)."""
    rate = np.clip(rate, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = np.where(bad > 0, bad * np.log(rate), 0.0)
        poor = np.where(total - bad > 0, (total - bad) * np.log1p(-rate), 0.0)
    return good + poor


def _log_marginal(bad: Array, total: Array) -> Array:
    """Log of the binomial likelihood averaged over the Jeffreys prior."""
    marginal = betaln(PRIOR + bad, PRIOR + total - bad) - betaln(PRIOR, PRIOR)
    return np.asarray(marginal, dtype=np.float64)


def _maximise_on_boundary(score: Callable[[Array], Array], low: Array, high: Array) -> Array:
    """The argmax of a concave log-likelihood on [low, high], given its derivative."""
    low = low + _EDGE
    high = high - _EDGE
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            rising = score(middle) > 0
        low = np.where(rising, middle, low)
        high = np.where(rising, high, middle)
    return (low + high) / 2


def _null_loglik_rate(bad: Array, total: Array, limit: Array) -> Array:
    safe = np.where(total > 0, total, 1.0)
    return _loglik(bad, total, np.minimum(bad / safe, limit))


def _null_loglik_share(bad: Array, total: Array, share: Array, tolerance: Array) -> Array:
    safe = np.where(total > 0, total, 1.0)
    nearest = np.clip(bad / safe, share - tolerance, share + tolerance)
    return _loglik(bad, total, np.clip(nearest, 0.0, 1.0))


def _null_loglik_two(
    t_bad: Array,
    t_total: Array,
    c_bad: Array,
    c_total: Array,
    limit: Array,
    ratio: bool,
) -> Array:
    """The log-likelihood maximised over treatment ≤ control + limit (or ≤ (1+limit) ×
    control when `ratio`): the unrestricted maximum when the estimates satisfy it, else
    the maximum on the boundary (concave in the control's rate: found by bisection)."""
    t_rate = t_bad / np.where(t_total > 0, t_total, 1.0)
    c_rate = c_bad / np.where(c_total > 0, c_total, 1.0)
    free = _loglik(t_bad, t_total, t_rate) + _loglik(c_bad, c_total, c_rate)
    if ratio:
        factor = 1.0 + limit
        inside = t_rate <= factor * c_rate

        def treatment_of(control: Array) -> Array:
            return factor * control

        def score(control: Array) -> Array:
            treated = factor * control
            return (
                t_bad / control
                - (t_total - t_bad) * factor / (1 - treated)
                + c_bad / control
                - (c_total - c_bad) / (1 - control)
            )

        low = np.zeros_like(t_rate)
        high = np.minimum(1.0, 1.0 / factor)
    else:
        inside = t_rate - c_rate <= limit

        def treatment_of(control: Array) -> Array:
            return control + limit

        def score(control: Array) -> Array:
            treated = control + limit
            return (
                t_bad / treated
                - (t_total - t_bad) / (1 - treated)
                + c_bad / control
                - (c_total - c_bad) / (1 - control)
            )

        low = np.maximum(0.0, -limit)
        high = np.minimum(1.0, 1.0 - limit)
    control = _maximise_on_boundary(score, np.broadcast_to(low, t_rate.shape).copy(), high)
    bounded = _loglik(t_bad, t_total, treatment_of(control)) + _loglik(c_bad, c_total, control)
    return np.where(inside, free, bounded)


def log_evalue(
    hypothesis: Hypothesis,
    treatment: tuple[ArrayLike, ArrayLike],
    limit: ArrayLike,
    control: tuple[ArrayLike, ArrayLike] | None = None,
    share: ArrayLike = 0.0,
) -> Array:
    """Log of the e-value against `hypothesis` for (bad, total) counts of the treatment
    (and of the control for the two-arm nulls; `share` is the configured share for
    SHARE_WITHIN, with `limit` the tolerance). At most 0 when the estimates satisfy the
    null; ValueError for counts or limits outside their range."""
    t_bad, t_total = _asarray(treatment[0]), _asarray(treatment[1])
    limit_array = _asarray(limit)
    if np.any(t_bad < 0) or np.any(t_bad > t_total):
        raise ValueError("counts must satisfy 0 ≤ bad ≤ total")
    numerator = _log_marginal(t_bad, t_total)
    if hypothesis is Hypothesis.RATE_AT_MOST:
        _check_range(limit_array, 0.0, 1.0, "limit")
        return numerator - _null_loglik_rate(t_bad, t_total, limit_array)
    if hypothesis is Hypothesis.SHARE_WITHIN:
        _check_range(limit_array, 0.0, 1.0, "tolerance")
        share_array = _asarray(share)
        _check_range(share_array, 0.0, 1.0, "share")
        return numerator - _null_loglik_share(t_bad, t_total, share_array, limit_array)
    if control is None:
        raise ValueError(f"{hypothesis} compares two arms: give the control's counts")
    c_bad, c_total = _asarray(control[0]), _asarray(control[1])
    if np.any(c_bad < 0) or np.any(c_bad > c_total):
        raise ValueError("counts must satisfy 0 ≤ bad ≤ total")
    ratio = hypothesis is Hypothesis.RATIO_AT_MOST
    _check_range(limit_array, 0.0 if ratio else -1.0, math.inf if ratio else 1.0, "limit")
    shape = np.broadcast_shapes(
        t_bad.shape, t_total.shape, c_bad.shape, c_total.shape, limit_array.shape
    )
    t_bad, t_total, c_bad, c_total, limit_array = (
        np.broadcast_to(a, shape) for a in (t_bad, t_total, c_bad, c_total, limit_array)
    )
    numerator = np.broadcast_to(numerator + _log_marginal(c_bad, c_total), shape)
    null = _null_loglik_two(t_bad, t_total, c_bad, c_total, limit_array, ratio)
    return np.asarray(numerator - null, dtype=np.float64)


def _check_range(values: Array, low: float, high: float, what: str) -> None:
    if np.any(values < low) or np.any(values > high) or np.any(np.isnan(values)):
        raise ValueError(f"{what} must be within {low:g} … {high:g}")


def difference_interval(treatment: Arm, control: Arm, alpha: float) -> tuple[float, float] | None:
    """The always-valid 1 − α interval for treatment − control: the differences no
    e-value rejects at 1/α (a confidence sequence: it holds at every look at once), to
    about 1e-5. None while an arm has no events."""
    if treatment.total <= 0 or control.total <= 0:
        return None
    threshold = math.log(1 / alpha)
    estimate = (treatment.rate or 0.0) - (control.rate or 0.0)
    return (
        _interval_edge(treatment, control, estimate, -1.0, threshold, above=True),
        _interval_edge(treatment, control, estimate, 1.0, threshold, above=False),
    )


def _interval_edge(
    treatment: Arm, control: Arm, inside: float, outside: float, threshold: float, above: bool
) -> float:
    """The last difference from `inside` towards `outside` that is not rejected, found
    on three ever finer grids of candidates (each one vectorised call)."""
    for _ in range(3):
        candidates = np.linspace(inside, outside, 101)[1:]
        if above:  # evidence that the difference is more than each candidate
            values = log_evalue(
                Hypothesis.DIFFERENCE_AT_MOST,
                (treatment.bad, treatment.total),
                np.clip(candidates, -_WIDEST, _WIDEST),
                (control.bad, control.total),
            )
        else:  # mirror: control − treatment ≤ −candidate
            values = log_evalue(
                Hypothesis.DIFFERENCE_AT_MOST,
                (control.bad, control.total),
                np.clip(-candidates, -_WIDEST, _WIDEST),
                (treatment.bad, treatment.total),
            )
        rejected = np.flatnonzero(values >= threshold)
        if rejected.size == 0:
            return outside
        first = int(rejected[0])
        inside, outside = (
            float(candidates[first - 1]) if first else inside,
            float(candidates[first]),
        )
    return inside


class WindowKind(StrEnum):
    """Where a window of a detector starts."""

    STEP = "step"  # since the step began, and every restart interval after it
    RECENT = "recent"  # the last ticks only: a gross failure seen at once


@dataclass(frozen=True)
class Thresholds:
    """Log thresholds of one gate's windows, from its share of the false-action budget."""

    step: float
    recent: float

    def of(self, kind: WindowKind) -> float:
        return self.step if kind is WindowKind.STEP else self.recent


def thresholds(
    budget_per_day: float,
    gates: int,
    restarts_per_day: float,
    recent_windows_per_day: float,
    recent_share: float = 0.25,
) -> Thresholds:
    """Thresholds so that all `gates` together act falsely at most `budget_per_day`
    times per plan-day on average: each gate gets an equal share, split between its
    restarting windows and its recent-ticks windows (`recent_share`). ValueError for a
    budget outside (0, 1) or counts below 1."""
    if not 0 < budget_per_day < 1:
        raise ValueError("the false-action budget must be within 0 … 1 (exclusive)")
    if gates < 1 or restarts_per_day < 1 or recent_windows_per_day < 1:
        raise ValueError("gates and windows per day must be at least 1")
    per_gate = budget_per_day / gates
    return Thresholds(
        step=math.log(restarts_per_day / (per_gate * (1 - recent_share))),
        recent=math.log(recent_windows_per_day / (per_gate * recent_share)),
    )


@dataclass(frozen=True)
class Detection:
    """The strongest window of one look: its start, its log e-value, its threshold."""

    start: float  # seconds (epoch) the window began
    kind: WindowKind
    log_evalue: float
    threshold: float
    treatment: Arm
    control: Arm | None

    @property
    def fired(self) -> bool:
        return self.log_evalue >= self.threshold

    @property
    def strength(self) -> float:
        """How far past (> 0) or short of (< 0) its threshold, in nats."""
        return self.log_evalue - self.threshold


@dataclass(frozen=True)
class Detector:
    """One gate's e-detector: the hypothesis, its limit, and its thresholds."""

    hypothesis: Hypothesis
    limit: float
    thresholds: Thresholds
    share: float = 0.0

    def strongest(
        self,
        starts: Sequence[float],
        kinds: Sequence[WindowKind],
        treatment: Sequence[Arm],
        control: Sequence[Arm] | None = None,
    ) -> Detection | None:
        """The window closest to (or furthest past) its threshold, from the counts of
        each window (parallel sequences); None when there is no window."""
        if not starts:
            return None
        t = np.array([[a.bad, a.total] for a in treatment], dtype=np.float64)
        c = None if control is None else np.array([[a.bad, a.total] for a in control])
        values = log_evalue(
            self.hypothesis,
            (t[:, 0], t[:, 1]),
            self.limit,
            None if c is None else (c[:, 0], c[:, 1]),
            self.share,
        )
        limits = np.array([self.thresholds.of(k) for k in kinds])
        best = int(np.argmax(values - limits))
        return Detection(
            start=starts[best],
            kind=kinds[best],
            log_evalue=float(values[best]),
            threshold=float(limits[best]),
            treatment=treatment[best],
            control=None if control is None else control[best],
        )
