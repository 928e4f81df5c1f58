"""The columns of every frame the query layer returns.

A Prometheus and a SQL implementation of the same question return frames with exactly
these columns, so the domain and the pages never know which source answered.
"""

from __future__ import annotations

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
