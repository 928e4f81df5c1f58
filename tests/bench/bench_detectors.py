"""The e-detectors alone on simulated traffic (docs/design.md §8): false actions on
healthy flags and detection delays of regressions, before they are wired into the
guards and the autopilot. Poisson evaluations per 30 s slot, binomial failures; per
tick the windows of `app.evidence.windows` (since the step, 10-minute restarts, the
last minute) judged for the treatment's error rate against the limit, treatment −
control, and the split within tolerance, at a budget of 0.01 false actions per
plan-day shared by the three gates.

`python -m tests.bench.bench_detectors [plan-days per A/A cell]` (default 40: 720
plan-days over the grid, about 3 minutes on 2 cores)."""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy.stats import beta

from app.evidence.sequential import Hypothesis, log_evalue, thresholds
from app.evidence.windows import WindowPlan

SLOT = 30.0
PLAN = WindowPlan()
LIMIT = 0.01
TOLERANCE = 0.02
BUDGET = 0.01


def first_actions(
    days: int,
    rate: float,
    share: float,
    p_treatment: float,
    p_control: float,
    hours: float = 24,
    change_at: float | None = None,
    p_after: float | None = None,
    seed: int = 1,
) -> np.ndarray:
    """Per simulated plan-day (rows) and gate (columns: error rate, treatment vs
    control, split), the seconds into the step of the first detection (inf: none)."""
    rng = np.random.default_rng(seed)
    slots = int(hours * 3600 / SLOT)
    n_t = rng.poisson(rate * share * SLOT, size=(days, slots))
    n_c = rng.poisson(rate * (1 - share) * SLOT, size=(days, slots))
    p_t = np.full(slots, p_treatment)
    if change_at is not None and p_after is not None:
        p_t[int(change_at / SLOT) :] = p_after
    x_t = rng.binomial(n_t, p_t)
    x_c = rng.binomial(n_c, p_control)

    def running(counts: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((days, 1)), counts.cumsum(axis=1)], axis=1)

    nt, xt, nc, xc = (running(a.astype(float)) for a in (n_t, x_t, n_c, x_c))
    limits = thresholds(BUDGET, 3, PLAN.restarts_per_day(), PLAN.recent_windows_per_day())
    every = int(PLAN.restart_every / SLOT)
    first = np.full((days, 3), np.inf)
    for k in range(1, slots + 1):
        starts = [0, *list(range(every, k, every))[-PLAN.restarts_kept :]]
        kinds = [limits.step] * len(starts)
        if k >= PLAN.recent_slots:
            starts.append(k - PLAN.recent_slots)
            kinds.append(limits.recent)
        s = np.array(starts)
        bound = np.array(kinds)
        t_total, t_bad = nt[:, k : k + 1] - nt[:, s], xt[:, k : k + 1] - xt[:, s]
        c_total, c_bad = nc[:, k : k + 1] - nc[:, s], xc[:, k : k + 1] - xc[:, s]
        values = (
            log_evalue(Hypothesis.RATE_AT_MOST, (t_bad, t_total), LIMIT),
            log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (t_bad, t_total), 0.0, (c_bad, c_total)),
            log_evalue(
                Hypothesis.SHARE_WITHIN, (t_total, t_total + c_total), TOLERANCE, share=share
            ),
        )
        for gate, value in enumerate(values):
            fired = (value >= bound).any(axis=1) & np.isinf(first[:, gate])
            first[fired, gate] = k * SLOT
    return first


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    low = 0.0 if hits == 0 else float(beta.ppf((1 - level) / 2, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1 - (1 - level) / 2, hits + 1, n - hits))
    return low, high


def main(days: int) -> None:
    started = time.monotonic()
    false, total = 0, 0
    for p in (0.002, 0.009):
        for rate in (2, 20, 200):
            for share in (0.01, 0.25, 0.5):
                found = first_actions(
                    days, rate, share, p, p, seed=int(rate * 1000 + share * 100 + p * 1e4)
                )
                acted = int(np.isfinite(found).any(axis=1).sum())
                false += acted
                total += days
                print(f"A/A errors {p:.1%} rate {rate}/s share {share:.0%}: {acted} of {days} days")
    low, high = clopper_pearson(false, total)
    print(
        f"A/A: {false} false actions in {total} plan-days = {false / total:.2%} per plan-day "
        f"(95 % interval {low:.2%} … {high:.2%})"
    )
    cases = (
        ("0.5 → 5 % at 25 %, 20/s, from the step's start", 20, 0.25, 0.05, None, 1),
        ("0.5 → 20 % at 25 %, 2/s, from the step's start", 2, 0.25, 0.20, None, 1),
        ("0.5 → 5 % at 25 %, 20/s, 3 h into the step", 20, 0.25, 0.05, 3 * 3600.0, 4),
    )
    for words, rate, share, bad, change, hours in cases:
        if change is None:
            found = first_actions(200, rate, share, bad, 0.005, hours=hours)
        else:
            found = first_actions(100, rate, share, 0.005, 0.005, hours, change, bad)
        delay = (found.min(axis=1) - (change or 0.0)) / 60
        print(f"{words}: median {np.median(delay):.1f} min, p90 {np.percentile(delay, 90):.1f} min")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
