"""Sticky bucketing: deterministic, in range, monotonic in the percentage, evenly spread."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.flags.evaluator import EvaluationContext, Reason, bucket, evaluate
from app.flags.model import FlagDefinition

NOW = datetime(2026, 1, 1, tzinfo=UTC)

percentages = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


def _percentage_flag(key: str, percentage: float) -> FlagDefinition:
    return FlagDefinition.model_validate(
        {
            "key": key,
            "state": "rollout",
            "rollout": {"strategy": "percentage", "percentage": percentage, "sticky": True},
        }
    )


def _enabled(key: str, user_id: str, percentage: float) -> bool:
    result = evaluate(_percentage_flag(key, percentage), EvaluationContext(user_id), NOW)
    assert result.reason in {Reason.SPLIT, Reason.DEFAULT}
    return result.value is True


@given(user_id=st.text(), flag_key=st.text(), low=percentages, high=percentages)
def test_enabled_at_a_percentage_stays_enabled_at_every_larger_one(
    user_id: str, flag_key: str, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    if _enabled(flag_key, user_id, low):
        assert _enabled(flag_key, user_id, high)


@given(user_id=st.text(), flag_key=st.text())
def test_bucket_is_deterministic_and_in_range(user_id: str, flag_key: str) -> None:
    position = bucket(flag_key, user_id)
    assert 0.0 <= position < 100.0
    assert bucket(flag_key, user_id) == position


@given(user_id=st.text(), flag_key=st.text())
def test_everyone_at_100_and_nobody_at_0(user_id: str, flag_key: str) -> None:
    assert _enabled(flag_key, user_id, 100.0)
    assert not _enabled(flag_key, user_id, 0.0)


def test_share_enabled_at_25_percent_is_close_to_25() -> None:
    flag = _percentage_flag("phase1_config_externalization", 25.0)
    enabled = sum(
        evaluate(flag, EvaluationContext(f"user-{n}"), NOW).value is True for n in range(10_000)
    )
    assert 2_300 <= enabled <= 2_700


def test_bucket_matches_the_seed_formula() -> None:
    # sha256("phase1_config_externalization:user123") starts 74ee0baa; 0x74ee0baa % 10000 = 7610.
    assert int("74ee0baa", 16) % 10000 == 7610
    assert bucket("phase1_config_externalization", "user123") == 76.1
