"""Change labels on the flag detail charts never overlap (issue 24: five changes close
together used to print on two rows over each other)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.express as px

from app.services.flag_detail import ChangeMark
from app.ui.flag_charts import LABEL_LANES, label_lanes, with_changes

T0 = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)


def _mark(minutes: float, before: float, after: float) -> ChangeMark:
    return ChangeMark(
        T0 + timedelta(minutes=minutes),
        f"{before:g} → {after:g} % · local-operator",
        "advance",
        before,
        after,
    )


def test_labels_close_together_take_rows_and_far_ones_share_the_first() -> None:
    ten = timedelta(minutes=10)
    times = [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), T0 + timedelta(minutes=30)]
    assert label_lanes(times, [ten] * 4) == [0, 1, 2, 0]
    # past the last row a label has no row (drawn short, its words in the hover)
    crowded = [T0 + timedelta(seconds=s) for s in range(LABEL_LANES + 1)]
    assert label_lanes(crowded, [ten] * len(crowded)) == [*range(LABEL_LANES), None]
    # any order in, the rows follow time
    assert label_lanes(list(reversed(times)), [ten] * 4) == [0, 2, 1, 0]


def test_five_changes_in_five_minutes_on_an_hour_chart_do_not_overlap() -> None:
    frame = pd.DataFrame(
        {"timestamp": [T0 - timedelta(minutes=30), T0 + timedelta(minutes=30)], "rate": [1, 2]}
    )
    marks = [_mark(m, 5 * m, 5 * m + 5) for m in range(5)]
    figure = with_changes(px.line(frame, x="timestamp", y="rate"), marks)
    notes = figure.layout.annotations
    assert [n.hovertext for n in notes] == [m.label for m in marks]  # every label's words
    shown = [(n.x, n.yshift) for n in notes if n.text != "•"]
    assert len({shift for _, shift in shown}) == len(shown)  # one row each: none overlap
    assert [n.text for n in notes].count("•") == len(marks) - LABEL_LANES
    assert figure.layout.margin.t == 60 + 16 * LABEL_LANES  # room for the rows
