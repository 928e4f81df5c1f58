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
began, so a gate also watches windows that restart at later points (`app.evidence.gates`): each
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "Arm",
    "Hypothesis",
    "Thresholds",
    "WindowKind",
    "difference_interval",
    "difference_intervals",
    "known_intervals",
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
#: an interval's edge: candidates per round, rounds (a bracket of 2 cut to 2 / 9^6 ≈ 4e-6)
_CANDIDATES = 8
_ROUNDS = 6


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
    rate = np.minimum(np.maximum(rate, 0.0), 1.0)  # np.clip's wrapper costs more than both
    with np.errstate(divide="ignore", invalid="ignore"):
        good = np.where(bad > 0, bad * np.log(rate), 0.0)
        poor = np.where(total - bad > 0, (total - bad) * np.log1p(-rate), 0.0)
    return good + poor


def _log_marginal(bad: Array, total: Array) -> Array:
    """Log of the binomial likelihood averaged over the Jeffreys prior."""
    from scipy.special import betaln  # only a judgement needs it: a rollback never loads scipy

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
    the maximum on the boundary (concave in the control's rate: in closed form for a
    difference, by bisection for a ratio)."""
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

        low = np.maximum(0.0, -limit)
        high = np.minimum(1.0, 1.0 - limit)
    low = np.broadcast_to(low, t_rate.shape).copy()
    high = np.broadcast_to(high, t_rate.shape).copy()
    if ratio:
        control = _maximise_on_boundary(score, low, high)
    else:
        control = _difference_control(t_bad, t_total, c_bad, c_total, limit, low, high)
    bounded = _loglik(t_bad, t_total, treatment_of(control)) + _loglik(c_bad, c_total, control)
    return np.where(inside, free, bounded)


def _difference_control(
    t_bad: Array,
    t_total: Array,
    c_bad: Array,
    c_total: Array,
    limit: Array,
    low: Array,
    high: Array,
) -> Array:
    """The control's rate maximising the likelihood with treatment = control + limit,
    within [low, high]: the cubic's closed form; an arm without events leaves the other
    arm's estimate; bisection where the closed form fails to give a number."""
    t_rate = t_bad / np.where(t_total > 0, t_total, 1.0)
    c_rate = c_bad / np.where(c_total > 0, c_total, 1.0)
    control = _difference_boundary(t_bad, t_total, c_bad, c_total, limit)
    control = np.where(t_total > 0, control, c_rate)
    control = np.where(c_total > 0, control, t_rate - limit)
    unsolved = ~np.isfinite(control)
    control = np.clip(np.where(unsolved, 0.5, control), low, high)
    if np.any(unsolved):
        tb, tt, cb, ct, lim = (
            np.broadcast_to(a, unsolved.shape)[unsolved]
            for a in (t_bad, t_total, c_bad, c_total, limit)
        )

        def score(at: Array) -> Array:
            treated = at + lim
            return tb / treated - (tt - tb) / (1 - treated) + cb / at - (ct - cb) / (1 - at)

        control = np.array(control, dtype=np.float64)
        control[unsolved] = _maximise_on_boundary(score, low[unsolved], high[unsolved])
    return control


def _difference_boundary(
    t_bad: Array, t_total: Array, c_bad: Array, c_total: Array, limit: Array
) -> Array:
    """The control's rate maximising the likelihood with treatment = control + limit:
    the root of the score's cubic in closed form (Farrington & Manning, 1990, after
    Miettinen & Nurminen, 1985). NaN where an arm has no events."""
    # products, not powers: numpy's pow of a negative base is ~50 times slower
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = t_bad / t_total, c_bad / c_total
        theta = c_total / t_total
        a3 = 3 * (1 + theta)
        b = -(1 + theta + p1 + theta * p2 + limit * (theta + 2))
        c = limit * limit + limit * (2 * p1 + theta + 1) + p1 + theta * p2
        d = -p1 * limit * (1 + limit)
        v = (b * b * b) / (a3 * a3 * a3) - b * c / (a3 * a3 * 2 / 3) + d / (a3 * 2 / 3)
        u = np.sign(v) * np.sqrt(np.maximum((b * b) / (a3 * a3) - c / a3, 0.0))
        cosine = np.clip(np.where(u != 0, v / (u * u * u), 0.0), -1.0, 1.0)
        treated = 2 * u * np.cos((np.pi + np.arccos(cosine)) / 3) - b / a3
    return np.asarray(treated - limit, dtype=np.float64)


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
    low, high = difference_intervals(
        (treatment.bad, treatment.total), (control.bad, control.total), alpha
    )
    return float(low), float(high)


def difference_intervals(
    treatment: tuple[ArrayLike, ArrayLike], control: tuple[ArrayLike, ArrayLike], alpha: float
) -> tuple[Array, Array]:
    """`difference_interval` of many pairs of arms at once (counts as arrays of one
    shape). Each edge is bracketed between the estimate (never rejected) and ±1, and the
    bracket cut into `_CANDIDATES` + 1 parts per round (the e-value being monotone in the
    difference tested): both edges of every pair in one vectorised call per round. NaN
    where an arm has no events. Within `known_intervals`, pairs searched before are not
    searched again."""
    t_bad, t_total, c_bad, c_total = np.broadcast_arrays(
        _asarray(treatment[0]), _asarray(treatment[1]), _asarray(control[0]), _asarray(control[1])
    )
    known = _KNOWN.get()
    if known is not None:
        keys = list(zip(t_bad.flat, t_total.flat, c_bad.flat, c_total.flat, strict=True))
        found = [known.get((*key, alpha)) for key in keys]
        if all(pair is not None for pair in found):
            edges = np.array(found, dtype=np.float64).reshape(*t_bad.shape, 2)
            return edges[..., 0], edges[..., 1]
    return _search_intervals(t_bad, t_total, c_bad, c_total, alpha)


#: intervals searched within `known_intervals`, by (t_bad, t_total, c_bad, c_total, alpha)
_KNOWN: ContextVar[dict[tuple[float, ...], tuple[float, float]] | None] = ContextVar(
    "known_intervals", default=None
)


@contextmanager
def known_intervals() -> Iterator[
    Callable[[tuple[Array, Array], tuple[Array, Array], float], None]
]:
    """A block in which `difference_intervals` answers the pairs searched before in it
    without searching again. Yields `learn(treatment, control, alpha)`, which searches
    many pairs in one vectorised call (the same numbers to the bit as one pair at a
    time): for a caller that knows the looks ahead, such as a backtest's next ticks."""
    known: dict[tuple[float, ...], tuple[float, float]] = {}
    token = _KNOWN.set(known)

    def learn(treatment: tuple[Array, Array], control: tuple[Array, Array], alpha: float) -> None:
        t_bad, t_total, c_bad, c_total = np.broadcast_arrays(
            _asarray(treatment[0]),
            _asarray(treatment[1]),
            _asarray(control[0]),
            _asarray(control[1]),
        )
        low, high = _search_intervals(t_bad, t_total, c_bad, c_total, alpha)
        for key, edges in zip(
            zip(t_bad.flat, t_total.flat, c_bad.flat, c_total.flat, strict=True),
            zip(low.flat, high.flat, strict=True),
            strict=True,
        ):
            known[(*key, alpha)] = (float(edges[0]), float(edges[1]))

    try:
        yield learn
    finally:
        _KNOWN.reset(token)


def _search_intervals(
    t_bad: Array, t_total: Array, c_bad: Array, c_total: Array, alpha: float
) -> tuple[Array, Array]:
    """`difference_intervals`' search, on counts of one shape."""
    shape = t_bad.shape
    t_bad, t_total, c_bad, c_total = (a.reshape(-1) for a in (t_bad, t_total, c_bad, c_total))
    threshold = math.log(1 / alpha)
    estimate = t_bad / np.where(t_total > 0, t_total, 1.0) - c_bad / np.where(
        c_total > 0, c_total, 1.0
    )
    # the lower edge tests treatment − control ≤ d; the upper, mirrored, control −
    # treatment ≤ −d: stacked, one call answers both
    first = (np.concatenate([t_bad, c_bad])[:, None], np.concatenate([t_total, c_total])[:, None])
    second = (np.concatenate([c_bad, t_bad])[:, None], np.concatenate([c_total, t_total])[:, None])
    sign = np.concatenate([np.ones_like(estimate), -np.ones_like(estimate)])[:, None]

    evidence = _difference_evidence(first, second)

    def rejected(candidates: Array) -> npt.NDArray[np.bool_]:
        return evidence(np.clip(sign * candidates, -_WIDEST, _WIDEST)) >= threshold

    near = np.concatenate([estimate, estimate])
    outside = np.concatenate([np.full_like(estimate, -1.0), np.ones_like(estimate)])
    far = outside.copy()
    bounded = rejected(outside[:, None])[:, 0]
    steps = np.arange(1, _CANDIDATES + 1) / (_CANDIDATES + 1)
    rows = np.arange(near.size)
    for _ in range(_ROUNDS):
        candidates = near[:, None] + (far - near)[:, None] * steps
        out = rejected(candidates)
        hit = out.any(axis=1)
        first_out = np.where(hit, out.argmax(axis=1), _CANDIDATES)
        far = np.where(hit, candidates[rows, np.minimum(first_out, _CANDIDATES - 1)], far)
        near = np.where(first_out > 0, candidates[rows, np.maximum(first_out - 1, 0)], near)
    edges = np.where(bounded, near, outside)
    empty = (t_total <= 0) | (c_total <= 0)
    low = np.where(empty, np.nan, edges[: estimate.size]).reshape(shape)
    high = np.where(empty, np.nan, edges[estimate.size :]).reshape(shape)
    return low, high


def _difference_evidence(
    treatment: tuple[Array, Array], control: tuple[Array, Array]
) -> Callable[[Array], Array]:
    """`log_evalue(DIFFERENCE_AT_MOST, treatment, limits, control)` as a function of
    `limits` (broadcast against the counts): what does not depend on the limit (the
    marginal likelihood, the unrestricted maximum) computed once, for an interval's
    search that tests many limits on the same counts. ValueError for counts outside
    their range."""
    t_bad, t_total = _asarray(treatment[0]), _asarray(treatment[1])
    c_bad, c_total = _asarray(control[0]), _asarray(control[1])
    if np.any(t_bad < 0) or np.any(t_bad > t_total) or np.any(c_bad < 0) or np.any(c_bad > c_total):
        raise ValueError("counts must satisfy 0 ≤ bad ≤ total")
    numerator = _log_marginal(t_bad, t_total) + _log_marginal(c_bad, c_total)
    t_rate = t_bad / np.where(t_total > 0, t_total, 1.0)
    c_rate = c_bad / np.where(c_total > 0, c_total, 1.0)
    free = _loglik(t_bad, t_total, t_rate) + _loglik(c_bad, c_total, c_rate)

    def evidence(limits: Array) -> Array:
        shape = np.broadcast_shapes(t_bad.shape, c_bad.shape, limits.shape)
        low = np.broadcast_to(np.maximum(0.0, -limits), shape).copy()
        high = np.broadcast_to(np.minimum(1.0, 1.0 - limits), shape).copy()
        rate = _difference_control(t_bad, t_total, c_bad, c_total, limits, low, high)
        bounded = _loglik(t_bad, t_total, rate + limits) + _loglik(c_bad, c_total, rate)
        null = np.where(t_rate - c_rate <= limits, free, bounded)
        return np.asarray(numerator - null, dtype=np.float64)

    return evidence


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
