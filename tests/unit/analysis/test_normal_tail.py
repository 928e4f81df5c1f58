"""The normal upper tail used by the health comparison is scipy's `norm.sf`, without scipy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from app.analysis.health import normal_upper_tail, two_proportion_greater


@given(st.floats(min_value=-40, max_value=40, allow_nan=False))
def test_equals_scipys_survival_function(z: float) -> None:
    assert normal_upper_tail(z) == pytest.approx(float(norm.sf(z)), rel=1e-12, abs=1e-300)


def test_known_values() -> None:
    assert normal_upper_tail(0.0) == 0.5
    assert normal_upper_tail(2.326347874040841) == pytest.approx(0.01, rel=1e-12)
    assert normal_upper_tail(float("inf")) == 0.0


def test_two_proportion_p_value_of_a_known_case() -> None:
    # 60 of 1,000 against 40 of 1,000: pooled 5 %, z = 0.02 / 0.009747 = 2.0520, p = 0.0201
    z, p = two_proportion_greater(60, 1000, 40, 1000)
    assert z == pytest.approx(2.05196, abs=1e-4)
    assert p == pytest.approx(float(norm.sf(z)), rel=1e-12)
    assert p == pytest.approx(0.02009, abs=1e-4)
