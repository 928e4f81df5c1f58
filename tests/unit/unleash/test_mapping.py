"""The Unleash → flag model mapping, over the JSON shapes Unleash 8.2.0 exports
(`POST /api/admin/features-batch/export`, see UNLEASH.md)."""

from __future__ import annotations

from typing import Any

import pytest

from app.flags.model import FlagMetadata, FlagState
from app.unleash.mapping import (
    ExportedFeature,
    admin_feature,
    exported_features,
    map_feature,
    parse_version,
    phase_of_tags,
    read_only_reason,
    rollout_percentage,
    version_token,
)

STRATEGY_ID = "01M86HDZ2B715SF10HMHAJXE08"


def strategy(rollout: object = "5", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "flexibleRollout",
        "id": STRATEGY_ID,
        "featureName": "probe_flag",
        "title": None,
        "parameters": {"groupId": "probe_flag", "rollout": rollout, "stickiness": "default"},
        "constraints": [],
        "variants": [],
        "disabled": False,
        "segments": [],
    }
    return body | extra


def feature(*strategies: dict[str, Any], enabled: bool = True, **extra: Any) -> ExportedFeature:
    return ExportedFeature("probe_flag", "", enabled, tuple(strategies), **extra)


EXPORT = {
    "features": [
        {"name": "f1", "description": None, "type": "release", "project": "default"},
        {"name": "f2", "description": "second", "type": "release", "project": "default"},
        {"name": "gone", "archived": True},
    ],
    "featureStrategies": [strategy("25") | {"featureName": "f1"}],
    "featureEnvironments": [
        {"enabled": True, "featureName": "f1", "environment": "production", "variants": []},
        {"enabled": False, "featureName": "f2", "environment": "production", "variants": []},
    ],
    "featureTags": [{"featureName": "f2", "tagType": "simple", "tagValue": "phase:3"}],
    "dependencies": [{"feature": "f2", "dependencies": [{"feature": "f1", "enabled": True}]}],
}


def test_the_export_gives_each_feature_with_its_switch_strategies_tags_and_parents() -> None:
    f1, f2 = exported_features(EXPORT)

    assert (f1.name, f1.enabled, len(f1.strategies), f1.description) == ("f1", True, 1, "")
    assert (f2.name, f2.enabled, f2.strategies, f2.description) == ("f2", False, (), "second")
    assert f2.tags == (("simple", "phase:3"),)
    assert f2.dependencies == ("f1",)


@pytest.mark.parametrize(
    ("enabled", "rollout", "state", "percentage"),
    [
        (True, "5", FlagState.ROLLOUT, 5.0),
        (True, "0", FlagState.ROLLOUT, 0.0),
        (True, "99", FlagState.ROLLOUT, 99.0),
        (True, "100", FlagState.ENABLED, 100.0),
        (False, "25", FlagState.DISABLED, 0.0),
    ],
)
def test_one_plain_flexible_rollout_maps_to_state_and_percentage(
    enabled: bool, rollout: str, state: FlagState, percentage: float
) -> None:
    mapped = map_feature(feature(strategy(rollout), enabled=enabled))

    assert mapped.read_only is None
    assert mapped.definition.state is state
    assert mapped.definition.percentage == percentage
    assert mapped.definition.rollout.percentage == float(rollout)  # kept while off
    assert mapped.strategy_id == STRATEGY_ID and mapped.rollout == rollout


def test_variants_and_stickiness_come_from_the_strategy() -> None:
    variants = [
        {"name": "blue", "weight": 300, "weightType": "variable", "stickiness": "default"},
        {
            "name": "green",
            "weight": 700,
            "weightType": "variable",
            "stickiness": "default",
            "payload": {"type": "string", "value": "g"},
        },
    ]
    random = strategy("10", variants=variants)
    random["parameters"] = {**random["parameters"], "stickiness": "random"}

    flag = map_feature(feature(random)).definition

    assert flag.variants == {
        "off": False,
        "blue": {"weight": 30.0, "payload": None},
        "green": {"weight": 70.0, "payload": "g"},
    }
    assert flag.rollout.variant == "green" and flag.default_variant == "off"
    assert flag.rollout.sticky is False
    assert map_feature(feature(strategy("10"))).definition.rollout.sticky is True


@pytest.mark.parametrize(
    ("strategies", "reason"),
    [
        ((), "no flexibleRollout strategy"),
        ((strategy("5"), strategy("7", id="other")), "2 strategies"),
        ((strategy("5", name="default"),), "its strategy is default"),
        ((strategy("5", disabled=True),), "strategy is disabled"),
        (
            (strategy("5", constraints=[{"contextName": "userId", "operator": "IN"}]),),
            "constraints",
        ),
        ((strategy("5", segments=[1]),), "segments"),
        ((strategy("150"),), 'rollout "150" is not a whole percentage'),
        ((strategy("12.5"),), 'rollout "12.5" is not'),
        ((strategy("abc"),), 'rollout "abc" is not'),
        ((strategy(25),), "rollout 25 is not"),  # a number, not Unleash's string
        ((strategy(None),), "rollout null is not"),
    ],
)
def test_what_cannot_be_mapped_exactly_is_read_only_with_the_reason(
    strategies: tuple[dict[str, Any], ...], reason: str
) -> None:
    mapped = map_feature(feature(*strategies))

    assert mapped.read_only is not None and reason in mapped.read_only
    assert read_only_reason(feature(*strategies)) == mapped.read_only


def test_a_read_only_feature_is_shown_without_inventing_a_percentage() -> None:
    off = map_feature(feature(strategy("5"), strategy("9"), enabled=False)).definition
    constrained = strategy("40", constraints=[{"contextName": "userId"}])
    on = map_feature(feature(constrained)).definition
    several = map_feature(feature(strategy("5"), strategy("9"))).definition

    assert off.state is FlagState.DISABLED
    assert (on.state, on.percentage) == (FlagState.ROLLOUT, 40.0)  # narrowed further
    assert several.state is FlagState.ENABLED  # the switch is on; exposure unknown


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("100", 100), ("101", None), ("05", None), ("-1", None), ("", None)],
)
def test_only_whole_percentages_within_range_parse(text: str, value: int | None) -> None:
    assert rollout_percentage(text) == value


def test_phase_and_dependencies_from_unleash_win_over_the_metadata_file() -> None:
    local = FlagMetadata(phase=2, description="local", dependencies=("x",), owner="sre")
    tagged = feature(strategy("5"), tags=(("simple", "phase:4"),), dependencies=("parent",))

    from_unleash = map_feature(tagged, local).definition.metadata
    from_file = map_feature(feature(strategy("5")), local).definition.metadata

    assert from_unleash == FlagMetadata(
        phase=4, description="local", dependencies=("parent",), owner="sre"
    )
    assert from_file == local
    assert phase_of_tags([("simple", "phase:9"), ("simple", "other")]) is None


def test_the_version_records_the_switch_strategy_and_rollout_and_moves_with_the_rest() -> None:
    base = feature(strategy("25"))
    token = version_token(base)

    basis = parse_version(token)
    assert basis is not None
    assert (basis.enabled, basis.strategy_id, basis.rollout) == (True, STRATEGY_ID, "25")
    assert version_token(feature(strategy("25"), enabled=False)) != token
    assert version_token(feature(strategy("30"))) != token
    with_variant = strategy("25", variants=[{"name": "a", "weight": 1000}])
    assert version_token(feature(with_variant)) != token  # the hash of the rest
    assert version_token(feature(strategy("25"))) == token
    assert parse_version("17") is None
    assert parse_version(version_token(feature())) is not None


def test_a_feature_read_on_its_own_has_the_version_the_export_gives() -> None:
    """`apply` reads a few flags one by one (the feature and its tags) and compares with
    versions from the export: both shapes must give the same token."""
    from_export = exported_features(EXPORT)[0]
    exported_strategy = {k: v for k, v in EXPORT["featureStrategies"][0].items()}
    body = {
        "name": "f1",
        "description": None,
        "archived": False,
        "dependencies": [],
        "children": [],
        "environments": [
            {"name": "development", "enabled": False, "strategies": []},
            {
                "name": "production",
                "enabled": True,
                "strategies": [
                    {k: v for k, v in exported_strategy.items() if k != "featureName"}
                    | {"sortOrder": 0}
                ],
            },
        ],
    }

    alone = admin_feature(body, "production", [])

    assert version_token(alone) == version_token(from_export)
    assert map_feature(alone) == map_feature(from_export)
    tagged = admin_feature(body, "production", [{"type": "simple", "value": "phase:2"}])
    assert version_token(tagged) != version_token(from_export)


def test_receipts_name_the_events_and_the_audit_details_give_their_ids_back() -> None:
    from app.unleash.backend import dashboard_event_ids, receipt_text

    one = receipt_text([15], "rollout-dashboard")
    two = receipt_text([16, 17], "rollout-dashboard")

    assert one == "Unleash event #15 by rollout-dashboard"
    assert two == "Unleash events #16, #17 by rollout-dashboard"
    assert dashboard_event_ids([one, two, "", "changed concurrently"]) == {15, 16, 17}
