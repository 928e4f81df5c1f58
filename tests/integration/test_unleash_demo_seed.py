"""The demo's Unleash seed: the bundled flags as a person would find them in Unleash."""

from __future__ import annotations

import pytest

from app.demo.unleash_demo import DEMO_ENVIRONMENTS, seed_unleash
from app.flags.loader import BUNDLED_CONFIG, load_config
from app.unleash.api import UnleashApi
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash


def test_the_bundled_flags_are_seeded_once_with_their_rollouts_states_and_phases(
    unleash: UnleashSeed,
) -> None:
    server = unleash.server
    api = UnleashApi(server.url, server.admin_token)
    configs = {
        ours: load_config(BUNDLED_CONFIG, theirs) for ours, theirs in DEMO_ENVIRONMENTS.items()
    }

    assert seed_unleash(api, "default", configs) == 20
    assert seed_unleash(api, "default", configs) == 0  # a second start adds nothing

    ab = unleash.call("GET", unleash.features_path("ab_testing"))
    by_env = {env["name"]: env for env in ab["environments"]}
    assert by_env["production"]["enabled"] is True
    assert [s["parameters"]["rollout"] for s in by_env["production"]["strategies"]] == ["25"]
    assert [s["parameters"]["rollout"] for s in by_env["development"]["strategies"]] == ["50"]
    # Disabled in production, at its configured 10 % (turning it on would not jump to 100 %).
    metrics = unleash.call("GET", unleash.features_path("phase3_metrics_observability"))
    production = next(e for e in metrics["environments"] if e["name"] == "production")
    assert production["enabled"] is False
    assert [s["parameters"]["rollout"] for s in production["strategies"]] == ["10"]
    # A user list becomes a constraint: the dashboard will show that flag read-only.
    (listed,) = unleash.strategies("phase2_ml_model_health")
    assert listed["constraints"][0]["values"] == ["ml-oncall-001", "ml-oncall-002", "tester001"]
    tags = unleash.call("GET", "/api/admin/features/phase2_health_checks/tags")["tags"]
    assert [(tag["type"], tag["value"]) for tag in tags] == [("simple", "phase:2")]
    # The safety flags are on at 100 %.
    (safety,) = unleash.strategies("rollback_mechanism")
    assert safety["parameters"]["rollout"] == "100"
