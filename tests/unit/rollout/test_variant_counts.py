"""Counting evaluations per variant from a counts frame: one flag, or every flag at once."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from app.rollout.evidence import variant_counts, variant_counts_by_flag
from app.rollout.guards import VariantCounts

ROWS = [
    # flag, variant, reason, evaluations
    ("checkout", "on", "split", 60.0),
    ("checkout", "on", "error", 6.0),
    ("checkout", "on", "targeting_match", 4.0),
    ("checkout", "off", "default", 120.0),
    ("checkout", "off", "error", 2.0),
    ("search", "b", "split", 10.0),
    ("search", "a", "default", 30.0),
    ("search", None, "split", 99.0),  # no variant: counted nowhere
    (None, "a", "split", 99.0),  # no flag: counted nowhere
    ("search", "c", "split", math.nan),  # no count: the variant is there, with 0
]


def frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["flag", "variant", "reason", "evaluations"])


def test_every_flags_counts_in_one_pass() -> None:
    assert variant_counts_by_flag(frame(ROWS)) == {
        "checkout": {
            "off": VariantCounts(evaluations=122.0, errors=2.0, split=120.0),
            "on": VariantCounts(evaluations=70.0, errors=6.0, split=60.0),
        },
        "search": {
            "a": VariantCounts(30.0, 0.0, 30.0),
            "b": VariantCounts(10.0, 0.0, 10.0),
            "c": VariantCounts(0.0, 0.0, 0.0),
        },
    }


def test_one_flags_counts() -> None:
    one = frame([r for r in ROWS if r[0] == "checkout"]).drop(columns="flag")
    assert variant_counts(one) == variant_counts_by_flag(frame(ROWS))["checkout"]
    assert variant_counts(one.iloc[0:0]) == {}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["f1", "f2", "f3"]),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["split", "default", "error", "targeting_match", "disabled"]),
            st.integers(min_value=0, max_value=10_000).map(float),
        ),
        max_size=40,
    )
)
def test_the_same_as_a_pandas_group_by(rows: list[tuple[str, str, str, float]]) -> None:
    data = frame(rows)
    expected = {}
    for flag, group in data.groupby("flag"):
        expected[str(flag)] = {
            str(variant): VariantCounts(
                float(g["evaluations"].sum()),
                float(g.loc[g["reason"] == "error", "evaluations"].sum()),
                float(g.loc[g["reason"].isin(["split", "default"]), "evaluations"].sum()),
            )
            for variant, g in group.groupby("variant")
        }
    assert variant_counts_by_flag(data) == expected
