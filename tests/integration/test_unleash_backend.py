"""The unleash flag backend against a real Unleash server (8.2.0 over PostgreSQL):
the mapping as read from a live export, read-only reasons, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo.unleash_server import LocalUnleash
from app.flags.model import FlagState
from app.flags.unleash_api import UnleashApi
from app.flags.unleash_backend import UnleashFlagBackend
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash

ENV = "production"
VARIANTS = [
    {"name": "blue", "weight": 500, "weightType": "variable", "stickiness": "default"},
    {"name": "green", "weight": 500, "weightType": "variable", "stickiness": "default"},
]


def backend_for(server: LocalUnleash, metadata: Path | None = None) -> UnleashFlagBackend:
    return UnleashFlagBackend(UnleashApi(server.url, server.admin_token, 10), "default", metadata)


def test_load_maps_what_unleash_holds_and_names_why_the_rest_is_read_only(
    unleash: UnleashSeed, tmp_path: Path
) -> None:
    unleash.create("plain", rollout=5, variants=VARIANTS)
    unleash.create("full", rollout=100)
    unleash.create("stopped", rollout=30, enabled=False)
    unleash.create("no_strategy", enabled=False)
    unleash.create("too_far", rollout="150")
    unleash.create(
        "narrowed",
        rollout=20,
        constraints=[{"contextName": "userId", "operator": "IN", "values": ["1"]}],
    )
    unleash.create("random", rollout=10, stickiness="random")
    unleash.tag("plain", "simple", "phase:3")
    metadata = tmp_path / "meta.yaml"
    metadata.write_text(
        "safety_flags: [full]\nrollout_steps: [5, 25, 100]\n"
        "flags: {plain: {phase: 1, owner: sre}, stopped: {phase: 2, dependencies: [plain]}}\n"
    )
    backend = backend_for(unleash.server, metadata)

    snapshot = backend.load(ENV)

    flags = snapshot.config.flags
    assert backend.environments() == ["development", "production"]
    assert (flags["plain"].state, flags["plain"].percentage) == (FlagState.ROLLOUT, 5.0)
    assert set(flags["plain"].variants) == {"off", "blue", "green"}
    assert flags["plain"].metadata.phase == 3  # the tag wins over the file's 1
    assert flags["plain"].metadata.owner == "sre"
    assert flags["full"].state is FlagState.ENABLED
    assert flags["stopped"].state is FlagState.DISABLED
    assert flags["stopped"].rollout.percentage == 30.0
    assert flags["stopped"].metadata.dependencies == ("plain",)
    assert flags["random"].rollout.sticky is False
    assert snapshot.config.global_.safety_flags == ("full",)
    assert snapshot.config.global_.rollout_steps == (5, 25, 100)
    assert set(snapshot.read_only) == {"no_strategy", "too_far", "narrowed"}
    assert "no flexibleRollout strategy" in snapshot.read_only["no_strategy"]
    assert '"150"' in snapshot.read_only["too_far"]
    assert "constraints" in snapshot.read_only["narrowed"]
    assert set(snapshot.versions) == set(flags)
    # The development environment has no strategies: everything is read-only there.
    assert set(backend.load("development").read_only) == set(flags)
