from datetime import UTC, datetime, timedelta

from app.rollout.guards import (
    DependencyStatus,
    GuardPolicy,
    VariantCounts,
    evaluate_guards,
)
from app.text import (
    format_age,
    format_change,
    format_duration,
    format_error_rate,
    format_guard_values,
    format_latency,
    format_rate,
    format_split,
)
from tests.support.gates import judged_inputs


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


# -- durations and guard values: one format, with units, at the boundaries -------------


def test_durations_read_in_whole_units_at_their_boundaries():
    assert format_duration(0) == "0 s"
    assert format_duration(59) == "59 s"
    assert format_duration(59.9) == "59 s"
    assert format_duration(60) == "1 min"
    assert format_duration(3599) == "59 min"
    assert format_duration(3600) == "1 h"
    assert format_duration(5400) == "1 h 30 min"


def _guards(**changes) -> dict[str, tuple[str, str]]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {
        "now": now,
        "percentage": 25.0,
        "source": "sql",
        "newest_sample": now - timedelta(seconds=59),
        "variants": {"on": VariantCounts(2500, 3, 2500), "off": VariantCounts(7500, 8, 7500)},
        "at_step_since": now - timedelta(seconds=3599),
        "instance_versions": {"web-1": "v2", "web-2": "v2", "web-3": "v1"},
        "current_config_version": "v2",
    }
    inputs = judged_inputs(GuardPolicy(), **(fields | changes))
    return {g.name: format_guard_values(g) for g in evaluate_guards(inputs, GuardPolicy())}


def test_guard_values_carry_units_and_one_format_per_kind():
    shown = _guards()
    assert shown["data_fresh"] == ("59 s", "≤ 2 min")
    assert shown["error_rate"] == ("0.11 %", "≤ 1 %")
    assert shown["soak_time"] == ("59 min", "≥ 15 min")
    assert shown["dependencies"] == ("0 of 0 dependencies", "success ≥ 99 %")
    assert shown["exposure"] == ("25.00 %", "25 %")
    assert shown["propagation"] == ("2 of 3 instances", "config v2")


def test_unmeasured_guard_values_read_as_a_dash():
    shown = _guards(source="", newest_sample=None, variants=None, instance_versions=None)
    assert shown["data_fresh"] == ("–", "≤ 2 min")
    assert shown["error_rate"] == ("–", "≤ 1 %")
    assert shown["exposure"] == ("–", "25 %")
    assert shown["propagation"] == ("–", "config v2")


def test_dependencies_count_of_how_many():
    deps = (DependencyStatus("a", 100.0, 1.0), DependencyStatus("b", 50.0, 1.0))
    assert _guards(dependencies=deps)["dependencies"] == ("1 of 2 dependencies", "success ≥ 99 %")
