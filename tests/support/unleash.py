"""A real Unleash server for the tests: one per session, over a fresh PostgreSQL database.

`unleash_server` starts it once (app/demo/unleash_server.py, the same start as the demo);
`unleash` hands each test an empty project (every feature archived and deleted first) and
an `UnleashSeed` to create features the way a person would through Unleash's Admin API.
Tests using them carry the `unleash` marker, which never skips on CI.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.demo.unleash_server import LocalUnleash, UnleashNotInstalled, start_unleash
from tests.conftest import fresh_postgres_database

__all__ = ["UnleashSeed", "unleash", "unleash_server"]

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
        """Archive, then delete, every feature of the project (two calls)."""
        listed = self.call("GET", self.features_path())
        names = [feature["name"] for feature in listed["features"]]
        if names:
            self.call("POST", f"/api/admin/projects/{PROJECT}/archive", {"features": names})
            self.call("POST", f"/api/admin/projects/{PROJECT}/delete", {"features": names})


@pytest.fixture(scope="session")
def unleash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUnleash]:
    """The session's real Unleash (fails, never skips, when it cannot start)."""
    log = Path(tmp_path_factory.mktemp("unleash")) / "unleash.log"
    with fresh_postgres_database("unleash_test") as url:
        try:
            server = start_unleash(url.replace("postgresql+psycopg://", "postgres://"), log)
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
