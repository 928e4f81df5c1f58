"""The columns of every frame the query layer returns.

A Prometheus and a SQL implementation of the same question return frames with exactly
these columns, so the domain and the pages never know which source answered.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import chain, pairwise
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ERROR_COUNT_COLUMNS",
    "ERROR_RATE_COLUMNS",
    "EVALUATION_RATE_COLUMNS",
    "FLAG_COUNT_COLUMNS",
    "INSTANCE_VERSION_COLUMNS",
    "LATENCY_COLUMNS",
    "SLOT_COUNT_COLUMNS",
    "SLOT_ERROR_COLUMNS",
    "SPARKLINE_COLUMNS",
    "VARIANT_COUNT_COLUMNS",
    "CountQuestions",
    "check_slot_span",
    "empty_frame",
    "slot_frame",
    "sparkline_frame",
]

#: flag, variant, evaluations per second over the window
EVALUATION_RATE_COLUMNS = ("flag", "variant", "evaluations_per_second")
#: flag, failed evaluations per second over the window
ERROR_RATE_COLUMNS = ("flag", "errors_per_second")
#: flag, failed evaluations the error counter counted over the window (a count)
ERROR_COUNT_COLUMNS = ("flag", "errors")
#: flag, quantile (0..1), latency in seconds at that quantile
LATENCY_COLUMNS = ("flag", "quantile", "seconds")
#: flag, timestamp (UTC, tz-aware), evaluations per second (all variants) at that step
SPARKLINE_COLUMNS = ("flag", "timestamp", "evaluations_per_second")


#: variant, reason, evaluations counted over the window (the guards' statistics need counts)
FLAG_COUNT_COLUMNS = ("variant", "reason", "evaluations")
#: every flag's evaluations by variant and reason over a window (counts, not rates)
VARIANT_COUNT_COLUMNS = ("flag", "variant", "reason", "evaluations")
#: instance, config_version (the version each instance reports having loaded)
INSTANCE_VERSION_COLUMNS = ("instance", "config_version")
#: every flag's evaluations by variant and reason per slot: the increase over the slot
#: that ends at `slot_end` (epoch seconds, a multiple of the slot length; docs/design.md §8)
SLOT_COUNT_COLUMNS = ("flag", "variant", "reason", "slot_end", "evaluations")
#: every flag's failures the error counter counted per slot (`SLOT_COUNT_COLUMNS`' grid)
SLOT_ERROR_COLUMNS = ("flag", "slot_end", "errors")


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    """A frame with the given columns and no rows (what a query returns for no data)."""
    return pd.DataFrame({column: pd.Series(dtype="object") for column in columns})


class CountQuestions:
    """The two count questions every source answers with one query shape of its own,
    `_counts`: evaluations by flag, variant and reason over a window (`flag`: only that
    one), as `VARIANT_COUNT_COLUMNS`."""

    def _counts(
        self, environment: str, window: timedelta, at: datetime, flag: str | None
    ) -> pd.DataFrame:
        raise NotImplementedError

    def flag_counts(
        self, environment: str, flag: str, window: timedelta, at: datetime
    ) -> pd.DataFrame:
        """Evaluations of `flag` by variant and reason over `window` (`FLAG_COUNT_COLUMNS`)."""
        counts = self._counts(environment, window, at, flag)
        return counts[list(FLAG_COUNT_COLUMNS)].reset_index(drop=True)

    def variant_counts(self, environment: str, window: timedelta, at: datetime) -> pd.DataFrame:
        """Every flag's evaluations by variant and reason over `window`, in one query."""
        return self._counts(environment, window, at, None)


def check_slot_span(start: datetime, end: datetime, slot: timedelta) -> None:
    """Refuse (ValueError) a span whose ends are off the slot grid (multiples of `slot`
    since the epoch) or reversed: every reader must cut time on the same grid."""
    seconds = slot.total_seconds()
    if seconds <= 0:
        raise ValueError("a slot must be longer than zero")
    for moment in (start, end):
        position = moment.timestamp() / seconds
        if abs(position - round(position)) > 1e-6:
            raise ValueError(f"{moment.isoformat()} is not on the {seconds:g} s slot grid")
    if end < start:
        raise ValueError("a span of slots must not end before it starts")


def slot_frame(
    result: list[dict[str, Any]], labels: tuple[str, ...], columns: tuple[str, ...]
) -> pd.DataFrame:
    """`columns` (the `labels`' values, then slot end and count) from a Prometheus range
    result, a row per point; an absent label reads "". Raises KeyError, IndexError,
    TypeError or ValueError for a reply of the wrong shape."""
    counts = [len(series["values"]) for series in result]
    points = list(chain.from_iterable(series["values"] for series in result))
    if not points:
        return empty_frame(columns)
    rows = np.repeat(np.arange(len(result)), counts)
    frame: dict[str, Any] = {}
    for column, label in zip(columns, labels, strict=False):
        values = np.array([str(series["metric"].get(label, "")) for series in result], object)
        frame[column] = values[rows]
    seconds = np.fromiter(map(itemgetter(0), points), dtype=np.float64, count=len(points))
    frame[columns[-2]] = np.round(seconds, 3)
    frame[columns[-1]] = _parse_floats(list(map(itemgetter(1), points)))
    return pd.DataFrame(frame, columns=list(columns))


def sparkline_frame(result: list[dict[str, Any]], flag_label: str) -> pd.DataFrame:
    """`SPARKLINE_COLUMNS` from a Prometheus range result (`[{metric, values}]`), a row
    per point, sorted by flag and time; raises KeyError, IndexError, TypeError or
    ValueError for a reply of the wrong shape."""
    counts = [len(series["values"]) for series in result]
    keys = [series["metric"].get(flag_label, "") for series in result]
    # Every point at once in C (numpy, Arrow), never a Python row or frame per series.
    points = list(chain.from_iterable(series["values"] for series in result))
    if not points:
        return empty_frame(SPARKLINE_COLUMNS)
    seconds = np.fromiter(map(itemgetter(0), points), dtype=np.float64, count=len(points))
    values = _parse_floats(list(map(itemgetter(1), points)))
    flags = np.repeat(np.arange(len(keys)), counts)
    frame = pd.DataFrame(
        {
            SPARKLINE_COLUMNS[0]: pd.array(keys, dtype="str").take(flags)
            if all(type(key) is str for key in keys)
            else np.array(keys, dtype=object)[flags],
            SPARKLINE_COLUMNS[1]: pd.to_datetime(seconds, unit="s", utc=True),
            SPARKLINE_COLUMNS[2]: values,
        }
    )
    # PromQL engines return a matrix sorted by labels, each series by time: sort only
    # if this one did not (its flags, in the order of the series that have points).
    present = [key for key, count in zip(keys, counts, strict=True) if count]
    if all(a <= b for a, b in pairwise(present)):
        return frame
    return frame.sort_values(list(SPARKLINE_COLUMNS[:2]), ignore_index=True, kind="stable")


def _parse_floats(texts: list[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Sample values as Prometheus writes them ("0.25", "NaN", "+Inf") as float64.

    Arrow parses them several times faster than `float()`, correctly rounded as Python
    does; anything it refuses (not a plain number string) goes through numpy, which
    parses or rejects it exactly as before.
    """
    import pyarrow as pa  # imported on first use: commands that never chart skip it

    try:
        parsed = pa.array(texts, type=pa.string()).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        parsed = None
    if parsed is None or parsed.null_count:
        return np.array(texts, dtype=np.float64)
    values: np.ndarray[Any, np.dtype[np.float64]] = parsed.to_numpy()
    return values
