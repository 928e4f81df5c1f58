import math

import pytest

from queries.histogram import histogram_quantile

BOUNDS = (0.001, 0.01, 0.1)


def test_interpolates_inside_the_bucket_like_promql():
    # 12 observations in (0, 0.001], 3 in (0.001, 0.01]: total 15.
    cumulative = (12, 15, 15, 15)
    # p50: rank 7.5 in the first bucket -> 0 + 0.001 * 7.5 / 12
    assert histogram_quantile(0.5, BOUNDS, cumulative) == pytest.approx(0.000625)
    # p99: rank 14.85 in the second bucket -> 0.001 + 0.009 * (14.85 - 12) / 3
    assert histogram_quantile(0.99, BOUNDS, cumulative) == pytest.approx(0.00955)


def test_rank_in_the_infinite_bucket_gives_the_highest_finite_bound():
    assert histogram_quantile(0.99, BOUNDS, (0, 0, 1, 10)) == 0.1


def test_no_observations_and_edges():
    assert histogram_quantile(0.5, BOUNDS, (0, 0, 0, 0)) is None
    assert histogram_quantile(0.0, BOUNDS, (1, 1, 1, 1)) == -math.inf
    assert histogram_quantile(1.0, BOUNDS, (1, 1, 1, 1)) == math.inf
    with pytest.raises(ValueError, match="one count per bound"):
        histogram_quantile(0.5, BOUNDS, (1, 1))
