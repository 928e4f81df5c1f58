import pytest

from app.rollout.ladder import LadderEnd, next_step, previous_step

STEPS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)


@pytest.mark.parametrize(
    ("current", "expected"), [(0, 1), (1, 5), (5, 10), (7, 10), (25, 50), (50, 100), (99, 100)]
)
def test_next_step_climbs_to_the_first_step_above(current, expected):
    assert next_step(current, STEPS) == expected


@pytest.mark.parametrize(
    ("current", "expected"), [(100, 50), (50, 25), (7, 5), (5, 1), (1, 0), (0.5, 0)]
)
def test_previous_step_falls_to_the_last_step_below(current, expected):
    assert previous_step(current, STEPS) == expected


def test_the_ends_of_the_ladder_are_refused():
    with pytest.raises(LadderEnd, match="top of the ladder"):
        next_step(100, STEPS)
    with pytest.raises(LadderEnd, match="0 %"):
        previous_step(0, STEPS)
