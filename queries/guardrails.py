"""A guardrail's PromQL as it is sent: `{environment}` and `{range}` substituted.

Each `increase(<selector>[{range}])` becomes the selector's growth over the slot,
`((<selector> - <selector> offset <slot>) >= 0)`, as the flag's own slot counts are read
(`queries.prometheus.SLOT_GROWTH`): `increase` over a 30 s slot of a counter scraped every
15 s sees one scrape interval and doubles it (half the events, counted twice), which
would make the evidence look twice as strong as it is. Any other use of `{range}` (a
`rate`, a histogram) is sent as written, with the slot's length.
"""

from __future__ import annotations

import re
from datetime import timedelta

from queries.promql import promql_duration, promql_string

__all__ = ["GUARDRAIL_COLUMNS", "guardrail_query"]

#: a guardrail query's answer: its flag and variant labels, slot end, count in the slot
GUARDRAIL_COLUMNS = ("flag", "variant", "slot_end", "count")

_INCREASE = re.compile(
    r"increase\(\s*(?P<selector>[a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{[^{}]*\})?)\s*\[\{range\}\]\s*\)"
)


def guardrail_query(text: str, environment: str, slot: timedelta) -> str:
    """`text` with `{environment}` (escaped as inside a PromQL string) and `{range}`
    (the slot) substituted, each `increase(x[{range}])` read as the slot's growth."""
    quoted_environment = promql_string(environment)[1:-1]
    with_environment = text.replace("{environment}", quoted_environment)
    duration = promql_duration(slot)

    def growth(match: re.Match[str]) -> str:
        selector = match.group("selector").strip()
        return f"(({selector} - {selector} offset {duration}) >= 0)"

    return _INCREASE.sub(growth, with_environment).replace("{range}", duration)
