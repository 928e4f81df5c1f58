"""The unleash flag backend against a real Unleash server (8.2.0 over PostgreSQL):
the mapping as read from a live export, read-only reasons, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo.unleash_server import LocalUnleash
from app.flags.backend import FlagChange, PartiallyApplied, VersionConflict
from app.flags.model import FlagState
from app.unleash.api import UnleashApi
from app.unleash.backend import UnleashFlagBackend
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


class OutsiderBetweenCheckAndWrite(UnleashFlagBackend):
    """Someone in Unleash's UI changes `victim` after the backend's version check and
    before its write: the JSON Patch `test` op is then the only guard left."""

    def __init__(self, server: LocalUnleash, seed: UnleashSeed, victim: str) -> None:
        super().__init__(UnleashApi(server.url, server.admin_token, 10))
        self.seed = seed
        self.victim = victim

    def _write(self, environment, flag, change, expected):  # type: ignore[no-untyped-def]
        if flag.definition.key == self.victim:
            self.seed.set_rollout(self.victim, "40", environment)
        super()._write(environment, flag, change, expected)


def test_a_change_between_check_and_write_is_a_conflict_and_is_not_overwritten(
    unleash: UnleashSeed,
) -> None:
    unleash.create("checkout", rollout=5)
    backend = OutsiderBetweenCheckAndWrite(unleash.server, unleash, "checkout")
    read = backend.load(ENV)

    with pytest.raises(VersionConflict) as conflict:
        backend.apply(ENV, [FlagChange("checkout", FlagState.ROLLOUT, 25)], read.versions)

    assert conflict.value.flags == ("checkout",)
    assert conflict.value.current.flag("checkout").percentage == 40.0
    (strategy,) = unleash.strategies("checkout")
    assert strategy["parameters"]["rollout"] == "40"  # the outsider's value stands
    newest = unleash.events("checkout", limit=1)[0]
    assert newest["data"]["parameters"]["rollout"] == "40"  # and no write of ours followed


def test_a_conflict_after_a_first_write_is_reported_flag_by_flag(unleash: UnleashSeed) -> None:
    unleash.create("alpha", rollout=10)
    unleash.create("beta", rollout=20)
    backend = OutsiderBetweenCheckAndWrite(unleash.server, unleash, "beta")
    read = backend.load(ENV)
    kill = [FlagChange(name, FlagState.DISABLED, 0) for name in ("alpha", "beta")]

    with pytest.raises(PartiallyApplied) as partial:
        backend.apply(ENV, kill, read.versions)

    assert partial.value.applied == ("alpha",)
    assert partial.value.conflicted == ("beta",)
    assert partial.value.failed == {}
    current = partial.value.current
    assert current.flag("alpha").state is FlagState.DISABLED
    assert "Unleash event" in current.receipts["alpha"]
    assert (current.flag("beta").state, current.flag("beta").percentage) == (
        FlagState.ROLLOUT,
        40.0,
    )
