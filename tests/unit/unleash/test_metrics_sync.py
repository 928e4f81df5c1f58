"""The pure rules of `sync-unleash`: Unleash's hourly raw metrics (the JSON shapes of
UNLEASH.md, "Metrics") become evaluation roll-ups per flag, environment, app and variant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.unleash.metrics_sync import (
    HourlyUsage,
    UnleashMetricsInvalid,
    evaluations_by_variant,
    hours_to_replace,
    parse_raw_metrics,
    rollups_of,
)

HOUR = datetime(2026, 12, 2, 17, tzinfo=UTC)

#: an answer of GET /api/admin/client-metrics/features/probe_flag/raw?hoursBack=2 as
#: unleash-server 8.2.0 gives it: zero-filled rows (no `variants` key) for every app and
#: environment of every hour, and the rows with data
RAW = {
    "version": 1,
    "maturity": "stable",
    "data": [
        {
            "timestamp": "2026-12-02T16:00:00.000Z",
            "no": 0,
            "yes": 0,
            "appName": "probe-app",
            "environment": "production",
            "featureName": "probe_flag",
        },
        {
            "featureName": "probe_flag",
            "appName": "old",
            "environment": "production",
            "timestamp": "2026-12-02T16:00:00.000Z",
            "yes": 5,
            "no": 7,
            "variants": {},
        },
        {
            "featureName": "probe_flag",
            "appName": "probe-app",
            "environment": "production",
            "timestamp": "2026-12-02T17:00:00.000Z",
            "yes": 25,
            "no": 75,
            "variants": {"blue": 12, "disabled": 75, "green": 13},
        },
        {
            "featureName": "probe_flag",
            "appName": "probe-app",
            "environment": "development",
            "timestamp": "2026-12-02T17:00:00.000Z",
            "yes": 3,
            "no": 0,
        },
    ],
}


def test_zero_filled_rows_are_left_out_and_the_rest_kept_as_unleash_said() -> None:
    usages = parse_raw_metrics("probe_flag", RAW)
    assert usages == [
        HourlyUsage("probe_flag", "old", "production", HOUR.replace(hour=16), 5, 7, ()),
        HourlyUsage(
            "probe_flag",
            "probe-app",
            "production",
            HOUR,
            25,
            75,
            (("blue", 12), ("disabled", 75), ("green", 13)),
        ),
        HourlyUsage("probe_flag", "probe-app", "development", HOUR, 3, 0, ()),
    ]


def test_yes_and_no_without_variants_are_on_and_off() -> None:
    assert evaluations_by_variant(5, 7, {}) == {"on": 5, "off": 7}
    assert evaluations_by_variant(0, 9, {}) == {"off": 9}
    assert evaluations_by_variant(4, 0, {}) == {"on": 4}


def test_named_variants_are_part_of_yes_and_disabled_is_part_of_no() -> None:
    """get_variant counts in yes/no and in `variants`: the named ones are evaluations
    that were on (taken out of `on`), `disabled` ones are already in `no` (or in `on`
    for an enabled flag without variants)."""
    assert evaluations_by_variant(25, 75, {"blue": 12, "green": 13, "disabled": 75}) == {
        "blue": 12,
        "green": 13,
        "off": 75,
    }
    # 40 is_enabled calls that were on, plus 60 get_variant calls
    assert evaluations_by_variant(100, 30, {"blue": 30, "green": 30, "disabled": 30}) == {
        "on": 40,
        "blue": 30,
        "green": 30,
        "off": 30,
    }


def test_the_total_is_always_yes_plus_no() -> None:
    for yes, no, variants in [
        (25, 75, {"blue": 12, "green": 13, "disabled": 75}),
        (7027, 42974, {"on": 1522, "off": 1507, "disabled": 16971}),
        (10, 0, {"disabled": 10}),
        (0, 0, {}),
    ]:
        assert sum(evaluations_by_variant(yes, no, variants).values()) == yes + no


def test_a_named_on_or_off_variant_adds_to_the_dashboard_convention() -> None:
    """Unleash variants named on/off (UNLEASH.md's example) merge with yes/no's names."""
    assert evaluations_by_variant(25, 75, {"on": 12, "off": 13, "disabled": 75}) == {
        "on": 12,
        "off": 88,
    }


def test_variants_counting_more_than_yes_never_give_a_negative_on() -> None:
    """Not seen from a real SDK; the named counts are kept and nothing is negative."""
    assert evaluations_by_variant(5, 1, {"blue": 9}) == {"blue": 9, "off": 1}


def test_rollups_are_hours_per_flag_environment_app_and_variant() -> None:
    rollups = rollups_of(parse_raw_metrics("probe_flag", RAW))
    got = {
        (r.flag, r.environment, r.origin, r.interval_start.hour, r.variant): r.evaluations
        for r in rollups
    }
    assert got == {
        ("probe_flag", "production", "unleash:old", 16, "on"): 5,
        ("probe_flag", "production", "unleash:old", 16, "off"): 7,
        ("probe_flag", "production", "unleash:probe-app", 17, "blue"): 12,
        ("probe_flag", "production", "unleash:probe-app", 17, "green"): 13,
        ("probe_flag", "production", "unleash:probe-app", 17, "off"): 75,
        ("probe_flag", "development", "unleash:probe-app", 17, "on"): 3,
    }
    assert {(r.interval_seconds, r.reason, r.errors, r.latency_count) for r in rollups} == {
        (3600.0, "split", 0, 0)
    }
    assert all(r.interval_end - r.interval_start == timedelta(hours=1) for r in rollups)


def test_the_hours_replaced_are_the_hours_with_data_per_flag() -> None:
    """An all-zero hour is left alone: Unleash zero-fills hours it has purged, and what
    was stored for them must outlive its 48 h."""
    usages = parse_raw_metrics("probe_flag", RAW)
    assert hours_to_replace(usages) == {
        ("probe_flag", HOUR.replace(hour=16)),
        ("probe_flag", HOUR),
    }


def test_no_data_at_all() -> None:
    assert parse_raw_metrics("quiet", {"version": 1, "data": []}) == []
    assert rollups_of([]) == []


def _row(**change: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "featureName": "probe_flag",
        "appName": "a",
        "environment": "production",
        "timestamp": "2026-12-02T17:00:00.000Z",
        "yes": 1,
        "no": 1,
        "variants": {},
    }
    row.update(change)
    return row


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "not an object"),
        ({"data": "x"}, "no list of rows"),
        ({"data": [_row(yes=-1)]}, "yes"),
        ({"data": [_row(no="7")]}, "no"),
        ({"data": [_row(yes=True)]}, "yes"),
        ({"data": [_row(timestamp="yesterday")]}, "timestamp"),
        ({"data": [_row(timestamp="2026-12-02T17:30:00.000Z")]}, "not the start of an hour"),
        ({"data": [_row(variants={"blue": -2})]}, "variants"),
        ({"data": [_row(variants=["blue"])]}, "variants"),
        ({"data": [_row(appName="")]}, "appName"),
        ({"data": [_row(environment=None)]}, "environment"),
        ({"data": [_row(featureName="other")]}, "other"),
        ({"data": ["row"]}, "not an object"),
    ],
)
def test_an_answer_of_another_shape_is_refused_with_what_is_wrong(document: Any, says: str) -> None:
    with pytest.raises(UnleashMetricsInvalid, match=says):
        parse_raw_metrics("probe_flag", document)
