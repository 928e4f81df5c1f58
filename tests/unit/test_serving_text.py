"""Flag detail's one line on how a flag splits its users."""

from __future__ import annotations

from app.flags.model import FlagDefinition, FlagState, Rollout
from app.services.flag_detail import serving_text
from app.unleash.mapping import ExportedFeature, map_feature


def test_a_yaml_flag() -> None:
    flag = FlagDefinition(key="a", state=FlagState.ROLLOUT, rollout=Rollout(percentage=25))
    assert serving_text(flag) == "Sticky per user · those in the rollout get on; the others get off"
    random = FlagDefinition(
        key="b", state=FlagState.ROLLOUT, rollout=Rollout(percentage=25, sticky=False)
    )
    assert serving_text(random).startswith("Not sticky (random per evaluation) · ")


def test_an_unleash_flag_names_its_stickiness_and_variant_weights() -> None:
    strategy = {
        "id": "01M8",
        "name": "flexibleRollout",
        "constraints": [],
        "segments": [],
        "parameters": {"rollout": "10", "stickiness": "userId", "groupId": "checkout"},
        "variants": [
            {"name": "blue", "weight": 300, "weightType": "variable", "stickiness": "userId"},
            {"name": "green", "weight": 700, "weightType": "variable", "stickiness": "userId"},
        ],
    }
    flag = map_feature(ExportedFeature("checkout", "", True, (strategy,))).definition

    assert flag.rollout.stickiness == "userId"
    assert serving_text(flag) == (
        "Stickiness: userId · those in the rollout get blue 30 %, green 70 %; the others get off"
    )
