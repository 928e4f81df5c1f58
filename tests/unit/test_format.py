from datetime import UTC, datetime, timedelta

from app.ui.format import (
    format_age,
    format_change,
    format_error_rate,
    format_latency,
    format_rate,
    format_split,
)


def test_numbers_read_as_the_user_sees_them():
    assert format_rate(10 / 15) == "0.67/s"
    assert format_rate(1234.5) == "1,234/s"
    assert format_error_rate(1 / 15) == "6.67 %"
    assert format_error_rate(None) == "–"
    assert format_latency(0.00095) == "0.95 ms"
    assert format_latency(1.5) == "1.50 s"
    assert format_latency(None) == "–"


def test_split_lists_the_largest_share_first_and_marks_tiny_ones():
    assert format_split({"off": 1 / 3, "on": 2 / 3}) == "on 67% · off 33%"
    assert format_split({"on": 0.998, "off": 0.002}) == "on 100% · off <1%"
    assert format_split({}) == "–"


def test_ages_and_changes():
    assert format_age(None) == "no data"
    assert format_age(42) == "42 s"
    assert format_age(600) == "10 min"
    assert format_age(7200) == "2 h"
    assert format_age(3 * 86400) == "3 d"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    text = format_change(now - timedelta(minutes=12), "alice", 25, 50, now)
    assert text == "12 min ago · alice · 25 → 50 %"
