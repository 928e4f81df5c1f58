"""The always-valid tests of the gates: what they promise (never more than α false
alarms however often they are looked at), what they detect, and their refusals."""

import math

import numpy as np
import pytest

from app.evidence.sequential import (
    Arm,
    Hypothesis,
    _null_loglik_two,
    difference_interval,
    difference_intervals,
    log_evalue,
    thresholds,
)

RNG_SEED = 20261207


def _brute_force_null(t_bad, t_total, c_bad, c_total, limit, ratio):
    """The null's maximum likelihood on a fine grid of the control's rate."""
    grid = np.linspace(1e-9, 1 - 1e-9, 200_001)
    treated = grid * (1 + limit) if ratio else grid + limit
    ok = (treated > 0) & (treated < 1)
    grid, treated = grid[ok], treated[ok]
    values = (
        t_bad * np.log(treated)
        + (t_total - t_bad) * np.log1p(-treated)
        + c_bad * np.log(grid)
        + (c_total - c_bad) * np.log1p(-grid)
    )
    return float(values.max())


@pytest.mark.parametrize(
    ("counts", "limit", "ratio"),
    [
        ((30, 400, 5, 1200), 0.01, False),
        ((3, 50, 0, 150), 0.0, False),
        ((200, 1000, 10, 1000), 0.05, False),
        ((30, 400, 5, 1200), 0.5, True),
        ((9, 20, 1, 60), 1.0, True),
    ],
)
def test_the_restricted_maximum_is_the_grid_maximum(counts, limit, ratio):
    t_bad, t_total, c_bad, c_total = (np.array(float(x)) for x in counts)
    found = _null_loglik_two(t_bad, t_total, c_bad, c_total, np.array(limit), ratio)
    assert float(found) == pytest.approx(_brute_force_null(*counts, limit, ratio), abs=1e-3)


@pytest.mark.parametrize(
    ("hypothesis", "treatment", "control", "limit", "share"),
    [
        (Hypothesis.RATE_AT_MOST, (4, 1000), None, 0.01, 0.0),
        (Hypothesis.DIFFERENCE_AT_MOST, (10, 1000), (9, 1000), 0.0, 0.0),
        (Hypothesis.RATIO_AT_MOST, (12, 1000), (10, 1000), 0.5, 0.0),
        (Hypothesis.SHARE_WITHIN, (260, 1000), None, 0.02, 0.25),
    ],
)
def test_estimates_inside_the_null_give_no_evidence(hypothesis, treatment, control, limit, share):
    assert float(log_evalue(hypothesis, treatment, limit, control, share)) <= 0.0


def _ever_rejected(values: np.ndarray, alpha: float) -> float:
    """Share of runs (rows) whose e-value reached 1/α at any look (columns)."""
    return float((values.max(axis=1) >= math.log(1 / alpha)).mean())


def test_a_rate_at_its_limit_is_rejected_at_most_alpha_of_the_time_looking_every_batch():
    rng = np.random.default_rng(RNG_SEED)
    runs, looks, batch, limit, alpha = 2000, 300, 40, 0.01, 0.05
    bad = rng.binomial(batch, limit, size=(runs, looks)).cumsum(axis=1)
    total = np.broadcast_to(np.arange(1, looks + 1) * batch, bad.shape)
    rejected = _ever_rejected(log_evalue(Hypothesis.RATE_AT_MOST, (bad, total), limit), alpha)
    assert rejected <= alpha  # Ville: P(ever ≥ 1/α) ≤ α, at 300 looks


def test_equal_arms_are_rejected_at_most_alpha_of_the_time_looking_every_batch():
    rng = np.random.default_rng(RNG_SEED + 1)
    runs, looks, alpha = 1000, 200, 0.05
    t_bad = rng.binomial(25, 0.02, size=(runs, looks)).cumsum(axis=1)
    c_bad = rng.binomial(75, 0.02, size=(runs, looks)).cumsum(axis=1)
    steps = np.arange(1, looks + 1)
    values = log_evalue(
        Hypothesis.DIFFERENCE_AT_MOST,
        (t_bad, np.broadcast_to(steps * 25, t_bad.shape)),
        0.0,
        (c_bad, np.broadcast_to(steps * 75, c_bad.shape)),
    )
    assert _ever_rejected(values, alpha) <= alpha


def test_a_split_at_the_edge_of_its_tolerance_is_rejected_at_most_alpha_of_the_time():
    rng = np.random.default_rng(RNG_SEED + 2)
    runs, looks, batch, alpha = 2000, 300, 100, 0.05
    treated = rng.binomial(batch, 0.27, size=(runs, looks)).cumsum(axis=1)
    total = np.broadcast_to(np.arange(1, looks + 1) * batch, treated.shape)
    values = log_evalue(Hypothesis.SHARE_WITHIN, (treated, total), 0.02, share=0.25)
    assert _ever_rejected(values, alpha) <= alpha


def test_a_gross_failure_is_overwhelming_evidence_at_fifty_evaluations():
    # 20 % of 50 evaluations failed, limit 1 %: e-value above e^15
    assert float(log_evalue(Hypothesis.RATE_AT_MOST, (10, 50), 0.01)) > 15


def test_a_fivefold_error_rate_is_proven_within_two_minutes_at_five_per_second():
    # treatment of a flag at 25 % of 20 evaluations/s: 5/s, 5 % errors vs a 1 % limit
    per_minute = 300
    minutes = 2
    value = log_evalue(Hypothesis.RATE_AT_MOST, (0.05 * per_minute * minutes, 600), 0.01)
    assert float(value) > 12


def test_treatment_worse_than_control_by_the_difference_is_found():
    value = log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (60, 1200), 0.0, (18, 3600))
    assert float(value) > math.log(1000)
    allowed = log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (60, 1200), 0.05, (18, 3600))
    assert float(allowed) <= 0  # 5 % − 0.5 % is within a 5-point allowance


def test_a_ratio_limit_reads_relative_to_control():
    # treatment 4 % vs control 1 %: four times as bad; allowed up to +400 %, not +50 %
    assert float(log_evalue(Hypothesis.RATIO_AT_MOST, (400, 10_000), 4.0, (100, 10_000))) <= 0
    assert float(log_evalue(Hypothesis.RATIO_AT_MOST, (400, 10_000), 0.5, (100, 10_000))) > 20


def test_the_interval_holds_the_true_difference_at_every_look():
    rng = np.random.default_rng(RNG_SEED + 3)
    missed = 0
    runs, alpha = 40, 0.1
    for _ in range(runs):
        t = Arm(0, 0)
        c = Arm(0, 0)
        for _look in range(12):
            t = Arm(t.bad + rng.binomial(200, 0.06), t.total + 200)
            c = Arm(c.bad + rng.binomial(200, 0.02), c.total + 200)
            interval = difference_interval(t, c, alpha)
            assert interval is not None
            if not interval[0] <= 0.04 <= interval[1]:
                missed += 1
                break
    assert missed / runs <= alpha


def test_the_interval_narrows_and_holds_the_estimate():
    small = difference_interval(Arm(6, 200), Arm(2, 200), 0.01)
    large = difference_interval(Arm(600, 20_000), Arm(200, 20_000), 0.01)
    assert small is not None and large is not None
    assert small[0] < 0.02 < small[1]
    assert large[0] < 0.02 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 4
    assert difference_interval(Arm(0, 0), Arm(2, 200), 0.01) is None


def test_thresholds_share_the_budget_between_gates_and_windows():
    found = thresholds(0.01, gates=4, restarts_per_day=150, recent_windows_per_day=2880)
    assert found.step == pytest.approx(math.log(150 / (0.0025 * 0.75)))
    assert found.recent == pytest.approx(math.log(2880 / (0.0025 * 0.25)))
    # expected false detections per day: the union bound adds back up to the budget
    per_day = 4 * (150 * math.exp(-found.step) + 2880 * math.exp(-found.recent))
    assert per_day == pytest.approx(0.01)


@pytest.mark.parametrize(("budget", "gates"), [(0.0, 1), (1.0, 1), (-0.1, 1), (0.01, 0)])
def test_thresholds_refuse_a_budget_or_count_out_of_range(budget, gates):
    with pytest.raises(ValueError):
        thresholds(budget, gates, 150, 2880)


def test_counts_out_of_range_are_refused_with_what_was_wrong():
    with pytest.raises(ValueError, match="0 ≤ bad ≤ total"):
        log_evalue(Hypothesis.RATE_AT_MOST, (5, 4), 0.01)
    with pytest.raises(ValueError, match="limit must be within"):
        log_evalue(Hypothesis.RATE_AT_MOST, (1, 4), 1.5)
    with pytest.raises(ValueError, match="give the control"):
        log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (1, 4), 0.0)
    with pytest.raises(ValueError, match="0 ≤ bad ≤ total"):
        Arm(3, 2)


def _bisected_null(t_bad, t_total, c_bad, c_total, limit):
    """The difference null's boundary maximum by bisection on the concave score."""
    low, high = max(0.0, -limit) + 1e-12, min(1.0, 1.0 - limit) - 1e-12
    for _ in range(80):
        middle = (low + high) / 2
        treated = middle + limit
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (
                t_bad / treated
                - (t_total - t_bad) / (1 - treated)
                + c_bad / middle
                - (c_total - c_bad) / (1 - middle)
            )
        low, high = (middle, high) if score > 0 else (low, middle)
    control = (low + high) / 2
    treated = control + limit
    value = 0.0
    for bad, total, rate in ((t_bad, t_total, treated), (c_bad, c_total, control)):
        value += (bad * math.log(rate) if bad else 0.0) + (
            (total - bad) * math.log1p(-rate) if total - bad else 0.0
        )
    return value


def test_the_difference_boundary_in_closed_form_is_the_bisected_maximum():
    rng = np.random.default_rng(RNG_SEED + 4)
    cases = 400
    t_total = rng.integers(1, 20_000, cases).astype(float)
    c_total = rng.integers(1, 20_000, cases).astype(float)
    t_bad = rng.binomial(t_total.astype(int), rng.uniform(0, 0.5, cases)).astype(float)
    c_bad = rng.binomial(c_total.astype(int), rng.uniform(0, 0.5, cases)).astype(float)
    t_bad[:40], c_bad[40:80] = 0.0, 0.0  # no failures on one side
    t_bad[80:100] = t_total[80:100]  # all failed
    limit = rng.choice([-0.2, -0.01, 0.0, 0.005, 0.05, 0.3], cases)
    found = _null_loglik_two(t_bad, t_total, c_bad, c_total, limit, False)
    t_rate, c_rate = t_bad / t_total, c_bad / c_total
    for i in np.flatnonzero(t_rate - c_rate > limit):  # outside the null: on its boundary
        expected = _bisected_null(t_bad[i], t_total[i], c_bad[i], c_total[i], limit[i])
        assert found[i] == pytest.approx(expected, abs=1e-6), (i, limit[i])


def test_an_arm_without_events_leaves_the_difference_at_the_other_arms_estimate():
    # no control yet: the null allows any control rate, so it explains the treatment
    nothing = log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (30, 100), 0.0, (0, 0))
    assert float(nothing) <= 0.0
    empty = log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (0, 0), -0.1, (5, 100))
    assert float(empty) <= 0.0


def test_intervals_of_many_pairs_at_once_are_each_pairs_interval():
    pairs = [((6, 200), (2, 200)), ((600, 20_000), (200, 20_000)), ((0, 50), (3, 900))]
    low, high = difference_intervals(
        ([t[0] for t, _ in pairs] + [1], [t[1] for t, _ in pairs] + [10]),
        ([c[0] for _, c in pairs] + [0], [c[1] for _, c in pairs] + [0]),
        0.01,
    )
    for i, (t, c) in enumerate(pairs):
        one = difference_interval(Arm(*t), Arm(*c), 0.01)
        assert one == (pytest.approx(low[i], abs=1e-12), pytest.approx(high[i], abs=1e-12))
    assert math.isnan(low[3]) and math.isnan(high[3])  # no control yet: no interval


def test_an_interval_edge_is_found_to_about_1e_5():
    treatment, control, alpha = Arm(60, 1200), Arm(18, 3600), 1e-4
    low, high = difference_interval(treatment, control, alpha)
    threshold = math.log(1 / alpha)

    def evidence_above(d):  # against "treatment − control ≤ d"
        return float(log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (60, 1200), d, (18, 3600)))

    def evidence_below(d):  # against "treatment − control ≥ d"
        return float(log_evalue(Hypothesis.DIFFERENCE_AT_MOST, (18, 3600), -d, (60, 1200)))

    assert evidence_above(low) < threshold <= evidence_above(low - 1e-5)
    assert evidence_below(high) < threshold <= evidence_below(high + 1e-5)


def test_known_intervals_answer_learned_pairs_with_the_same_numbers_without_searching() -> None:
    from unittest import mock

    from app.evidence import sequential
    from app.evidence.sequential import known_intervals

    rng = np.random.default_rng(11)
    t_total = rng.integers(1, 5_000, 50).astype(float)
    c_total = rng.integers(1, 50_000, 50).astype(float)
    t_bad = np.floor(t_total * rng.uniform(0, 0.2, 50))
    c_bad = np.floor(c_total * rng.uniform(0, 0.2, 50))
    alpha = 1e-4
    searched = [
        difference_intervals(
            (t_bad[i : i + 1], t_total[i : i + 1]), (c_bad[i : i + 1], c_total[i : i + 1]), alpha
        )
        for i in range(50)
    ]
    with known_intervals() as learn:
        learn((t_bad, t_total), (c_bad, c_total), alpha)
        # a search now would be a failure: every pair is answered from what was learned
        with mock.patch.object(sequential, "_search_intervals", side_effect=AssertionError):
            for i in range(50):
                low, high = difference_intervals(
                    (t_bad[i : i + 1], t_total[i : i + 1]),
                    (c_bad[i : i + 1], c_total[i : i + 1]),
                    alpha,
                )
                assert (low[0], high[0]) == (searched[i][0][0], searched[i][1][0])
            with pytest.raises(AssertionError):  # another alpha, or a pair never learned
                difference_intervals((t_bad[:1], t_total[:1]), (c_bad[:1], c_total[:1]), 1e-3)
    # outside the block nothing is remembered
    with (
        mock.patch.object(sequential, "_search_intervals", side_effect=AssertionError),
        pytest.raises(AssertionError),
    ):
        difference_intervals((t_bad[:1], t_total[:1]), (c_bad[:1], c_total[:1]), alpha)
