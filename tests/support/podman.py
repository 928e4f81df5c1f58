"""podman for the container tests: the configuration that works on these machines, the
local Debian base image (scripts/container-base.sh, cached under ~/.cache), builds, and
the commands the tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-py:bookworm"
#: the host's CA bundle, handed to builds as a secret (never copied into an image)
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: the user the image runs as (Dockerfile `ARG UID`)
IMAGE_UID = 10001


def podman_environment() -> dict[str, str]:
    """The process environment with CONTAINERS_CONF set, once the base image exists
    (made or imported from the cache by scripts/container-base.sh). Fails, never skips,
    when podman is missing."""
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make system-deps` (scripts/system-deps.sh)")
    made = subprocess.run(
        ["bash", str(ROOT / "scripts" / "container-base.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if made.returncode != 0:
        pytest.fail(f"scripts/container-base.sh failed:\n{made.stderr[-2000:]}")
    return {**os.environ, "CONTAINERS_CONF": made.stdout.strip().splitlines()[-1]}


def podman(
    env: Mapping[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS…`; with `check`, a failure fails the test with podman's stderr."""
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args[:3])}… exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done


def build(
    env: Mapping[str, str],
    tag: str,
    context: Path,
    build_args: Mapping[str, str] | None = None,
) -> None:
    """`podman build` as REAL-COMPONENTS.md says: host network, docker format (keeps
    HEALTHCHECK), the CA bundle as a secret when the host has one."""
    args = ["build", "--network=host", "--format", "docker", "--tag", tag]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cabundle,src={CA_BUNDLE}"]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    podman(env, *args, str(context), timeout=1800)


def session_tag(name: str) -> str:
    """A tag only this test session uses (removed by it afterwards)."""
    return f"localhost/{name}:test-{uuid.uuid4().hex[:8]}"


def wait_for_health(url: str, timeout: float = 120) -> None:
    """Until Streamlit's `/_stcore/health` at `url` answers `ok`; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer /_stcore/health within {timeout:g} s")


def wait_until_healthy(env: Mapping[str, str], container: str, timeout: float = 120) -> None:
    """`podman healthcheck run` (the image's HEALTHCHECK, once) until it passes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        done = podman(env, "healthcheck", "run", container, check=False, timeout=60)
        if done.returncode == 0:
            return
        last = done.stdout + done.stderr
        time.sleep(1)
    pytest.fail(f"{container} was not healthy within {timeout:g} s: {last}")


def remove_containers(env: Mapping[str, str], names: Sequence[str]) -> None:
    if names:
        podman(env, "rm", "--force", "--ignore", *names, check=False, timeout=120)
