"""The container tests' images, each built once per session under a tag of its own, which
is removed afterwards (`rmi --no-prune`: the layers stay in podman's build cache, so the
next session's build takes seconds). Every test here carries the `podman` marker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.podman import BASE_IMAGE, ROOT, build, podman, podman_environment, session_tag


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    return podman_environment()


@pytest.fixture(scope="session")
def project_image(podman_env: dict[str, str]) -> Iterator[str]:
    """The top-level Dockerfile, built on the local Debian base."""
    tag = session_tag("rollout-dashboard")
    build(podman_env, tag, ROOT, {"BASE_IMAGE": BASE_IMAGE})
    try:
        yield tag
    finally:
        podman(podman_env, "rmi", "--no-prune", tag, check=False)


@dataclass(frozen=True)
class StandIns:
    postgres: str
    prometheus: str


@pytest.fixture(scope="session")
def stand_in_images(podman_env: dict[str, str]) -> Iterator[StandIns]:
    """PostgreSQL and Prometheus from Debian's packages, for the official images that no
    registry here serves (tests/containers/postgres, tests/containers/prometheus)."""
    images = StandIns(session_tag("rollout-test-postgres"), session_tag("rollout-test-prometheus"))
    build(podman_env, images.postgres, ROOT / "tests" / "containers" / "postgres")
    build(podman_env, images.prometheus, ROOT / "tests" / "containers" / "prometheus")
    try:
        yield images
    finally:
        podman(podman_env, "rmi", "--no-prune", images.postgres, images.prometheus, check=False)
