"""A real Unleash server for the tests: one per session, over a fresh PostgreSQL database.

`unleash_server` starts it once (app/demo/unleash_server.py, the same start as the demo);
`unleash` hands each test an empty project (every feature archived and deleted first) and
an `UnleashSeed` to create features the way a person would through Unleash's Admin API.
Tests using them carry the `unleash` marker, which never skips on CI.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.demo.unleash_server import LocalUnleash, UnleashNotInstalled, start_unleash
from app.flags.loader import BUNDLED_CONFIG, load_config
from app.flags.model import FlagConfig, FlagDefinition, FlagState, GlobalSettings, Rollout
from tests.conftest import fresh_postgres_database

__all__ = [
    "BUNDLED_AS_UNLEASH",
    "UnleashSeed",
    "bundled_metadata",
    "seed_bundled_config",
    "unleash",
    "unleash_config",
    "unleash_server",
    "unleash_view",
]

PROJECT = "default"


@dataclass(frozen=True)
class UnleashSeed:
    """Admin API calls for arranging a test, with the server's admin token."""

    server: LocalUnleash

    def call(self, method: str, path: str, body: object = None) -> Any:
        """`method path` on the server; the decoded JSON answer (None for an empty one).
        HTTP errors raise urllib.error.HTTPError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server.url + path,
            data=data,
            method=method,
            headers={"Authorization": self.server.admin_token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def features_path(self, feature: str = "") -> str:
        base = f"/api/admin/projects/{PROJECT}/features"
        return f"{base}/{feature}" if feature else base

    def create(
        self,
        name: str,
        *,
        rollout: int | str | None = None,
        environment: str = "production",
        enabled: bool = True,
        stickiness: str = "default",
        variants: Sequence[Mapping[str, object]] = (),
        constraints: Sequence[Mapping[str, object]] = (),
    ) -> str | None:
        """A release feature; with `rollout`, one flexibleRollout strategy in `environment`
        (turned on when `enabled`). Returns the strategy id (None without a strategy)."""
        self.call("POST", self.features_path(), {"name": name, "type": "release"})
        if rollout is None:
            if enabled:
                raise ValueError("turning on an environment without a strategy adds 100 %")
            return None
        strategy = self.call(
            "POST",
            f"{self.features_path(name)}/environments/{environment}/strategies",
            {
                "name": "flexibleRollout",
                "constraints": list(constraints),
                "parameters": {"rollout": str(rollout), "stickiness": stickiness, "groupId": name},
                "variants": list(variants),
            },
        )
        if enabled:
            self.switch(name, environment, on=True)
        return str(strategy["id"])

    def switch(self, name: str, environment: str, *, on: bool) -> None:
        self.call(
            "POST", f"{self.features_path(name)}/environments/{environment}/{'on' if on else 'off'}"
        )

    def strategies(self, name: str, environment: str = "production") -> list[dict[str, Any]]:
        path = f"{self.features_path(name)}/environments/{environment}/strategies"
        found = self.call("GET", path)
        assert isinstance(found, list)
        return found

    def set_rollout(self, name: str, rollout: str, environment: str = "production") -> None:
        """Change the rollout as someone in Unleash's own UI would (no compare-and-set)."""
        (strategy,) = self.strategies(name, environment)
        self.call(
            "PATCH",
            f"{self.features_path(name)}/environments/{environment}/strategies/{strategy['id']}",
            [{"op": "replace", "path": "/parameters/rollout", "value": rollout}],
        )

    def tag(self, name: str, tag_type: str, value: str) -> None:
        self.call("POST", f"/api/admin/features/{name}/tags", {"type": tag_type, "value": value})

    def events(self, feature: str, limit: int = 50) -> list[dict[str, Any]]:
        """The feature's events, newest first."""
        found = self.call("GET", f"/api/admin/search/events?feature=IS:{feature}&limit={limit}")
        return list(found["events"])

    def delete_every_feature(self) -> None:
        """Archive, then delete, every feature of the project.

        Unleash 8.2.0 records the archive in each feature's lifecycle asynchronously (its
        event announcer runs about once a second); a feature deleted before that makes
        the insert fail a foreign key, an unhandled rejection that stops the server. So
        the delete waits until every archived feature's lifecycle says so."""
        listed = self.call("GET", self.features_path())
        names = [feature["name"] for feature in listed["features"]]
        if not names:
            return
        self.call("POST", f"/api/admin/projects/{PROJECT}/archive", {"features": names})
        deadline = time.monotonic() + 15
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            stages = self.call("GET", f"{self.features_path(waiting[-1])}/lifecycle")
            if any(stage.get("stage") == "archived" for stage in stages or ()):
                waiting.pop()
            else:
                time.sleep(0.1)
        self.call("POST", f"/api/admin/projects/{PROJECT}/delete", {"features": names})


#: Where `seed_bundled_config` puts each environment of the bundled config: Unleash's
#: open-source edition has development and production, no staging.
BUNDLED_AS_UNLEASH = {"production": "production", "development": "staging"}


def unleash_view(flag: FlagDefinition) -> FlagDefinition:
    """`flag` as the unleash backend reads it back once seeded: its state and percentage
    as one flexibleRollout (100 % when enabled, stickiness `default`), no targeting rules,
    on/off variants."""
    enabled_at_full = flag.state is FlagState.ENABLED or (
        flag.state is FlagState.ROLLOUT and flag.rollout.percentage == 100
    )
    percentage = 100.0 if enabled_at_full else float(int(flag.rollout.percentage))
    return FlagDefinition(
        key=flag.key,
        state=FlagState.ENABLED if enabled_at_full else flag.state,
        rollout=Rollout(percentage=percentage, stickiness="default"),
        metadata=flag.metadata,
    )


def unleash_config(config: FlagConfig, environment: str) -> FlagConfig:
    """`config` (a bundled environment) as the unleash backend loads it when seeded by
    `seed_bundled_config` with `bundled_metadata`."""
    return FlagConfig(
        version=f"unleash:{PROJECT}",
        environment=environment,
        global_=GlobalSettings(
            safety_flags=config.global_.safety_flags, rollout_steps=config.global_.rollout_steps
        ),
        phases=config.phases,
        phases_start=config.phases_start,
        flags={key: unleash_view(flag) for key, flag in config.flags.items()},
    )


def bundled_metadata(path: Path) -> Path:
    """The bundled config's plan and per-flag metadata as the backend's metadata file."""
    config = load_config(BUNDLED_CONFIG, "production")
    document = {
        "phases": {
            "start": config.phases_start.isoformat() if config.phases_start else None,
            "list": [phase.model_dump() for phase in config.phases],
        },
        "safety_flags": list(config.global_.safety_flags),
        "rollout_steps": list(config.global_.rollout_steps),
        "flags": {key: flag.metadata.model_dump(mode="json") for key, flag in config.flags.items()},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def seed_bundled_config(seed: UnleashSeed) -> None:
    """Every flag of the bundled config as an Unleash feature with one flexibleRollout
    strategy per environment (`BUNDLED_AS_UNLEASH`), switched on unless disabled."""
    configs = {
        unleash_env: load_config(BUNDLED_CONFIG, bundled_env)
        for unleash_env, bundled_env in BUNDLED_AS_UNLEASH.items()
    }

    def one(key: str) -> None:
        seed.call("POST", seed.features_path(), {"name": key, "type": "release"})
        for environment, config in configs.items():
            flag = unleash_view(config.flags[key])
            seed.call(
                "POST",
                f"{seed.features_path(key)}/environments/{environment}/strategies",
                {
                    "name": "flexibleRollout",
                    "constraints": [],
                    "parameters": {
                        "rollout": str(int(flag.rollout.percentage)),
                        "stickiness": "default",
                        "groupId": key,
                    },
                },
            )
            if flag.state is not FlagState.DISABLED:
                seed.switch(key, environment, on=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, configs["production"].flags))


#: The name of a second admin token of the session's Unleash: someone else writing in
#: Unleash (its own UI, a script), told apart from the dashboard's `rollout-dashboard`.
SOMEONE_ELSE = "olga-script"


@pytest.fixture(scope="session")
def unleash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUnleash]:
    """The session's real Unleash (fails, never skips, when it cannot start)."""
    log = Path(tmp_path_factory.mktemp("unleash")) / "unleash.log"
    with fresh_postgres_database("unleash_test") as url:
        try:
            server = start_unleash(
                url.replace("postgresql+psycopg://", "postgres://"),
                log,
                other_admins=[SOMEONE_ELSE],
            )
        except (UnleashNotInstalled, RuntimeError) as error:
            pytest.fail(f"could not start a local Unleash server: {error}")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def unleash(unleash_server: LocalUnleash) -> UnleashSeed:
    """The session's Unleash with an empty project, and the calls to arrange a test."""
    seed = UnleashSeed(unleash_server)
    try:
        seed.delete_every_feature()
    except urllib.error.URLError as error:
        pytest.fail(f"the session's Unleash server stopped answering: {error}")
    return seed
