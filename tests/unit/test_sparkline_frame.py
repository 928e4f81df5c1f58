"""A Prometheus range result becomes the sparkline frame: a row per point, sorted by
flag and time, values parsed as Prometheus writes them (NaN, +Inf, -Inf included)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from queries.frames import SPARKLINE_COLUMNS, empty_frame, sparkline_frame

T0 = 1767268800.317  # a query sent at an arbitrary instant: not whole seconds


def _reply(text: str) -> list[dict[str, Any]]:
    """The `result` of a reply body, parsed as the client parses it."""
    parsed: list[dict[str, Any]] = json.loads(text)["data"]["result"]
    return parsed


# Series out of order, one missing points, one without the flag label, one with extra
# labels, special values as Prometheus spells them, and whole-second timestamps (ints).
MIXED = _reply(
    """{"status":"success","data":{"resultType":"matrix","result":[
  {"metric":{"flag":"beta"},"values":[[1767268800.317,"1.5"],[1767268860.317,"NaN"],
                                      [1767268920.317,"+Inf"]]},
  {"metric":{"flag":"alpha","instance":"10.0.0.1:8000"},"values":[[1767268860.317,"0.25"]]},
  {"metric":{},"values":[[1767268800,"-Inf"],[1767268860,"0"]]},
  {"metric":{"flag":"gamma","job":"svc"},"values":[[1767268800.317,"2e-05"],
                                                  [1767268860.317,"12345678.125"]]}
]}}"""
)


def _expected(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    flags, seconds, values = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "flag": pd.Series(list(flags)),  # pandas infers its string dtype
            "timestamp": pd.to_datetime(np.array(seconds), unit="s", utc=True),
            "evaluations_per_second": np.array(values, dtype=np.float64),
        }
    )


def test_mixed_reply_gives_the_expected_frame() -> None:
    expected = _expected(
        [
            ("", 1767268800.0, -math.inf),
            ("", 1767268860.0, 0.0),
            ("alpha", T0 + 60, 0.25),
            ("beta", T0, 1.5),
            ("beta", T0 + 60, math.nan),
            ("beta", T0 + 120, math.inf),
            ("gamma", T0, 2e-05),
            ("gamma", T0 + 60, 12345678.125),
        ]
    )
    frame = sparkline_frame(MIXED, "flag")
    assert list(frame.columns) == list(SPARKLINE_COLUMNS)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_sorted_reply_keeps_its_order_and_reads_another_label() -> None:
    result = [
        {"metric": {"flag_name": "a"}, "values": [[T0, "1"], [T0 + 60, "2"]]},
        {"metric": {"flag_name": "b"}, "values": [[T0, "3"]]},
    ]
    expected = _expected([("a", T0, 1.0), ("a", T0 + 60, 2.0), ("b", T0, 3.0)])
    pd.testing.assert_frame_equal(sparkline_frame(result, "flag_name"), expected, check_exact=True)


@pytest.mark.parametrize("result", [[], [{"metric": {"flag": "a"}, "values": []}]])
def test_no_points_is_the_empty_frame(result: list[dict[str, Any]]) -> None:
    pd.testing.assert_frame_equal(sparkline_frame(result, "flag"), empty_frame(SPARKLINE_COLUMNS))


@pytest.mark.parametrize(
    "result",
    [
        [{"metric": {"flag": "a"}}],
        [{"metric": {"flag": "a"}, "values": [[T0]]}],
        [{"metric": {"flag": "a"}, "values": [[T0, "fast"]]}],
        [{"metric": {"flag": "a"}, "values": [["later", "1"]]}],
        [{"metric": {"flag": "a"}, "values": None}],
    ],
)
def test_a_reply_of_the_wrong_shape_raises_what_reading_reply_turns_into_unavailable(
    result: list[dict[str, Any]],
) -> None:
    with pytest.raises((KeyError, IndexError, TypeError, ValueError)):
        sparkline_frame(result, "flag")
