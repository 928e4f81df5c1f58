"""PromQL text building: the one place label values are escaped.

Every query in `queries.prometheus` builds its selectors with `selector`, so no user
text (a flag key, an environment) ever reaches Prometheus unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

__all__ = ["label_name", "promql_duration", "promql_string", "selector"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Words the PromQL lexer reads as keywords or numbers outside braces: such a metric
# name cannot stand before `{`, so it goes into the braces as `__name__` instead.
_NOT_A_BARE_METRIC = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "start",
        "end",
        "inf",
        "nan",
        "sum",
        "avg",
        "count",
        "min",
        "max",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "count_values",
        "quantile",
    }
)

_SIMPLE_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _escape_char(char: str) -> str:
    simple = _SIMPLE_ESCAPES.get(char)
    if simple is not None:
        return simple
    # U+FFFD is printable, but Prometheus' lexer takes it for the mark of an invalid
    # byte and refuses the query ("invalid UTF-8 rune"): it travels escaped.
    if char.isprintable() and char != "\ufffd":
        return char
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"a lone surrogate (U+{code:04X}) cannot be sent to Prometheus")
    # Go reads \xHH as a raw byte, so only ASCII may use it; the rest needs \u or \U.
    if code < 0x80:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def promql_string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal that Prometheus reads back exactly.

    Raises ValueError for lone surrogates, which no UTF-8 text (and no label) can hold.
    """
    return '"' + "".join(_escape_char(char) for char in value) + '"'


def selector(
    metric: str, labels: Mapping[str, str], matching: Mapping[str, str] | None = None
) -> str:
    """`metric{a="x",b="y",c=~"re"}`: `labels` must equal their value, `matching` match
    their regular expression; every value escaped by `promql_string`.

    Raises ValueError when the metric or a label name is not a valid Prometheus name.
    """
    if not _METRIC_NAME.fullmatch(metric):
        raise ValueError(f"not a valid metric name: {metric!r}")
    matchers = [f"{label_name(name)}={promql_string(value)}" for name, value in labels.items()]
    matchers += [
        f"{label_name(name)}=~{promql_string(pattern)}"
        for name, pattern in (matching or {}).items()
    ]
    if metric.lower() in _NOT_A_BARE_METRIC:
        return "{" + ",".join([f"__name__={promql_string(metric)}", *matchers]) + "}"
    return metric + "{" + ",".join(matchers) + "}"


def promql_duration(td: timedelta) -> str:
    """A PromQL duration in whole seconds, e.g. `300s`.

    Raises ValueError when `td` is under one second or not a whole number of seconds.
    """
    if td % timedelta(seconds=1):
        raise ValueError(f"duration must be whole seconds, got {td}")
    seconds = td // timedelta(seconds=1)
    if seconds < 1:
        raise ValueError(f"duration must be at least 1s, got {td}")
    return f"{seconds}s"


def label_name(name: str) -> str:
    """`name` unchanged when it is a valid Prometheus label name; ValueError otherwise."""
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"not a valid label name: {name!r}")
    return name
