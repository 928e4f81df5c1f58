"""The columns of every frame the query layer returns.

A Prometheus and a SQL implementation of the same question return frames with exactly
these columns, so the domain and the pages never know which source answered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ERROR_RATE_COLUMNS",
    "EVALUATION_RATE_COLUMNS",
    "FLAG_COUNT_COLUMNS",
    "INSTANCE_VERSION_COLUMNS",
    "LATENCY_COLUMNS",
    "SPARKLINE_COLUMNS",
    "VARIANT_COUNT_COLUMNS",
    "empty_frame",
    "one_flag_counts",
    "sparkline_frame",
]

#: flag, variant, evaluations per second over the window
EVALUATION_RATE_COLUMNS = ("flag", "variant", "evaluations_per_second")
#: flag, failed evaluations per second over the window
ERROR_RATE_COLUMNS = ("flag", "errors_per_second")
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


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    """A frame with the given columns and no rows (what a query returns for no data)."""
    return pd.DataFrame({column: pd.Series(dtype="object") for column in columns})


def one_flag_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """`VARIANT_COUNT_COLUMNS` counts of a single flag as `FLAG_COUNT_COLUMNS`."""
    return counts[list(FLAG_COUNT_COLUMNS)].reset_index(drop=True)


def sparkline_frame(result: list[dict[str, Any]], flag_label: str) -> pd.DataFrame:
    """`SPARKLINE_COLUMNS` from a Prometheus range result (`[{metric, values}]`), a row
    per point, sorted by flag and time; raises KeyError, IndexError, TypeError or
    ValueError for a reply of the wrong shape."""
    counts = [len(series["values"]) for series in result]
    keys = [series["metric"].get(flag_label, "") for series in result]
    # Columns built in C by numpy, not one Python row per point.
    seconds = np.fromiter(
        (point[0] for series in result for point in series["values"]),
        dtype=np.float64,
        count=sum(counts),
    )
    values = np.array(
        [point[1] for series in result for point in series["values"]], dtype=np.float64
    )
    if not counts or not sum(counts):
        return empty_frame(SPARKLINE_COLUMNS)
    frame = pd.DataFrame(
        {
            SPARKLINE_COLUMNS[0]: np.repeat(np.array(keys, dtype=object), counts),
            SPARKLINE_COLUMNS[1]: pd.to_datetime(seconds, unit="s", utc=True),
            SPARKLINE_COLUMNS[2]: values,
        }
    )
    # PromQL engines return a matrix sorted by labels, each series by time: sort only
    # if this one did not.
    if frame[SPARKLINE_COLUMNS[0]].is_monotonic_increasing:
        return frame
    return frame.sort_values(list(SPARKLINE_COLUMNS[:2]), ignore_index=True, kind="stable")
