"""Slots: the grid every reader cuts time on, and the frames a source returns them in."""

from datetime import UTC, datetime, timedelta

import pytest

from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from queries.frames import SLOT_COUNT_COLUMNS, SLOT_ERROR_COLUMNS, check_slot_span, slot_frame
from queries.sql import SqlMetrics

SLOT = timedelta(seconds=30)
END = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_a_span_must_lie_on_the_slot_grid():
    check_slot_span(END - timedelta(minutes=5), END, SLOT)
    check_slot_span(END, END, SLOT)  # empty, but on the grid
    with pytest.raises(ValueError, match="not on the 30 s slot grid"):
        check_slot_span(END - timedelta(seconds=10), END, SLOT)
    with pytest.raises(ValueError, match="not on the 30 s slot grid"):
        check_slot_span(END, END + timedelta(seconds=1), SLOT)
    with pytest.raises(ValueError, match="must not end before"):
        check_slot_span(END, END - SLOT, SLOT)
    with pytest.raises(ValueError, match="longer than zero"):
        check_slot_span(END, END, timedelta(0))


def test_a_range_result_becomes_a_row_per_slot_with_missing_labels_empty():
    result = [
        {
            "metric": {"flag": "a", "variant": "on", "reason": "split"},
            "values": [[1_700_000_010.0, "4"], [1_700_000_040.0, "2.5"]],
        },
        {"metric": {"flag": "b", "variant": "off"}, "values": [[1_700_000_040.0, "1"]]},
    ]
    frame = slot_frame(result, ("flag", "variant", "reason"), SLOT_COUNT_COLUMNS)
    assert list(frame.columns) == list(SLOT_COUNT_COLUMNS)
    assert frame.values.tolist() == [
        ["a", "on", "split", 1_700_000_010.0, 4.0],
        ["a", "on", "split", 1_700_000_040.0, 2.5],
        ["b", "off", "", 1_700_000_040.0, 1.0],
    ]
    errors = slot_frame([], ("flag",), SLOT_ERROR_COLUMNS)
    assert errors.empty and list(errors.columns) == list(SLOT_ERROR_COLUMNS)


def _rollup(end: datetime, seconds: int, evaluations: int, errors: int = 0) -> EvaluationRollup:
    return EvaluationRollup(
        interval_start=end - timedelta(seconds=seconds),
        interval_seconds=seconds,
        environment="production",
        flag="checkout",
        variant="on",
        reason="split",
        evaluations=evaluations,
        errors=errors,
    )


def test_rollups_are_summed_into_the_slot_their_interval_ends_in(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    insert_rollups(
        engine,
        [
            _rollup(END - timedelta(seconds=30), 15, 3, 1),  # on the boundary: the slot it ends
            _rollup(END - timedelta(seconds=20), 15, 5),  # inside the last slot
            _rollup(END, 15, 7, 2),  # on the last slot's end
            _rollup(END - timedelta(seconds=60), 3600, 100),  # an hour, copied: lands whole
            _rollup(END + timedelta(seconds=15), 15, 1000),  # after the span: not counted
        ],
    )
    source = SqlMetrics(engine)
    frame = source.slot_counts("production", END - timedelta(minutes=2), END, SLOT)
    by_end = dict(zip(frame["slot_end"], frame["evaluations"], strict=True))
    base = END.timestamp()
    assert by_end == {base - 60: 100.0, base - 30: 3.0, base: 12.0}
    errors = source.slot_error_counts("production", END - timedelta(minutes=2), END, SLOT)
    assert dict(zip(errors["slot_end"], errors["errors"], strict=True)) == {
        base - 60: 0.0,
        base - 30: 1.0,
        base: 2.0,
    }
    engine.dispose()


def test_no_rollup_in_the_span_is_an_empty_frame():
    engine = open_database("sqlite://")
    assert SqlMetrics(engine).slot_counts("production", END - SLOT, END, SLOT).empty
    engine.dispose()
