"""Treatment against control as the overview and the health line judge it: worse exactly
when the treatment-vs-control gate's e-value over the same counts reaches its
threshold, so no view calls worse what the gate would not act on."""

import numpy as np
import pytest

from app.evidence.comparison import compare_variants, gate_alpha, points
from app.evidence.gates import GateSettings
from app.evidence.sequential import Arm, Hypothesis, log_evalue

SETTINGS = GateSettings()


def one(treated: Arm, base: Arm, settings: GateSettings = SETTINGS):
    return compare_variants([("on", treated, "off", base)], settings)[0]


def test_a_clear_regression_is_proven_worse_with_its_interval():
    # 0.9 % vs 0.2 % over 10 000 evaluations each
    judged = one(Arm(90, 10_000), Arm(20, 10_000))
    assert judged.worse
    assert judged.difference == pytest.approx(0.007)
    assert judged.interval is not None
    low, high = judged.interval
    assert 0 < low < 0.007 < high < 0.02
    assert judged.words.startswith("on − off +0.70 pt (always-valid interval +")
    assert judged.words.endswith(": proven worse")


def test_a_difference_within_chance_is_not_proven():
    judged = one(Arm(3, 1_000), Arm(2, 1_000))
    assert not judged.worse
    assert judged.interval is not None and judged.interval[0] < 0 < judged.interval[1]
    assert judged.words.endswith(": not proven worse")


def test_an_allowed_difference_is_not_worse():
    allowing = GateSettings(max_difference=0.02)
    assert not one(Arm(90, 10_000), Arm(20, 10_000), allowing).worse


def test_without_events_in_an_arm_there_is_no_interval():
    judged = one(Arm(0, 0), Arm(20, 10_000))
    assert judged.difference is None and judged.interval is None and not judged.worse
    assert judged.words == "on − off: no evaluations of one of them yet"


def test_worse_agrees_with_the_gate_threshold_away_from_the_boundary():
    rng = np.random.default_rng(7)
    threshold = SETTINGS.thresholds().step
    assert gate_alpha(SETTINGS) == pytest.approx(np.exp(-threshold))
    agreed = 0
    for _ in range(300):
        total_t, total_c = rng.integers(50, 20_000, size=2)
        bad_t = rng.binomial(total_t, rng.uniform(0.001, 0.08))
        bad_c = rng.binomial(total_c, rng.uniform(0.001, 0.03))
        evalue = float(
            log_evalue(
                Hypothesis.DIFFERENCE_AT_MOST,
                (float(bad_t), float(total_t)),
                0.0,
                (float(bad_c), float(total_c)),
            )
        )
        if abs(evalue - threshold) < 0.5:  # the interval's edge is found by bisection
            continue
        judged = one(Arm(bad_t, total_t), Arm(bad_c, total_c))
        assert judged.worse == (evalue >= threshold), (bad_t, total_t, bad_c, total_c)
        agreed += 1
    assert agreed > 250


def test_many_flags_are_compared_at_once_in_order():
    judged = compare_variants(
        [("on", Arm(90, 10_000), "off", Arm(20, 10_000)), ("b", Arm(3, 1_000), "a", Arm(2, 1_000))],
        SETTINGS,
    )
    assert [(j.treatment, j.worse) for j in judged] == [("on", True), ("b", False)]
    assert compare_variants([], SETTINGS) == []


@pytest.mark.parametrize(("difference", "words"), [(0.001, "+0.10 pt"), (-0.0125, "−1.25 pt")])
def test_points(difference, words):
    assert points(difference) == words
