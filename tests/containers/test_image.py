"""The image of the top-level Dockerfile, built with podman on the local Debian base:
who it runs as, what it carries, `serve` healthy by its own HEALTHCHECK, the CLI inside."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from importlib.metadata import version

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from app.flags.loader import BUNDLED_CONFIG, load_config
from tests.support.podman import IMAGE_UID, ROOT, podman, remove_containers, wait_for_health
from tests.support.servers import free_port
from tests.unit.test_probes import closed_port

pytestmark = pytest.mark.podman

EXAMPLES = "/opt/rollout-dashboard/examples"
PASSWORD = "hunter2-n0t-for-logs"


def test_the_image_runs_as_a_fixed_non_root_user(project_image: str, podman_env: dict[str, str]):
    config = json.loads(podman(podman_env, "image", "inspect", project_image).stdout)[0]
    assert config["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    ran = podman(podman_env, "run", "--rm", "--entrypoint", "id", project_image)
    assert ran.stdout.split()[:2] == [f"uid={IMAGE_UID}(rollout)", f"gid={IMAGE_UID}(rollout)"]


def test_the_image_declares_its_healthcheck(project_image: str, podman_env: dict[str, str]):
    config = json.loads(podman(podman_env, "image", "inspect", project_image).stdout)[0]
    # podman shows the docker-format HEALTHCHECK at the top level
    assert config["Healthcheck"]["Test"] == [
        "CMD",
        "rollout-dashboard",
        "healthcheck",
    ]


def test_version_inside_is_the_package_version(project_image: str, podman_env: dict[str, str]):
    ran = podman(podman_env, "run", "--rm", project_image, "--version")
    assert ran.stdout == f"rollout-dashboard {version('rollout-dashboard')}\n"


def locked_runtime_packages() -> dict[str, str]:
    """{normalised name: version} of uv.lock's runtime dependencies on Linux/CPython."""
    uv = [found] if (found := shutil.which("uv")) else ["python3", "-m", "uv"]  # as the Makefile
    export = ["export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
    exported = subprocess.run(
        [*uv, *export, "--format", "requirements-txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    locked = {}
    for line in exported.splitlines():
        requirement, _, marker = line.partition(";")
        if "==" not in requirement or line.startswith((" ", "#")):
            continue
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, version_text = requirement.strip().split("==")
        locked[canonicalize_name(name)] = version_text
    return locked


def test_the_image_holds_the_locked_dependencies_only(
    project_image: str, podman_env: dict[str, str]
):
    listing = (
        "import importlib.metadata as m; "
        "print('\\n'.join(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()))"
    )
    ran = podman(podman_env, "run", "--rm", "--entrypoint", "python", project_image, "-c", listing)
    installed = dict(line.split("==") for line in ran.stdout.split())
    installed = {canonicalize_name(name): version_text for name, version_text in installed.items()}
    assert installed.pop("rollout-dashboard") == version("rollout-dashboard")
    assert installed == locked_runtime_packages()


def test_the_prometheus_rules_are_inside(project_image: str, podman_env: dict[str, str]):
    for rules in sorted((ROOT / "deploy" / "prometheus").glob("*.yml")):
        inside = podman(
            podman_env,
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            project_image,
            f"/opt/rollout-dashboard/prometheus/{rules.name}",
        )
        assert inside.stdout == rules.read_text()


@pytest.mark.postgres
def test_serve_is_healthy_and_the_cli_runs_inside(
    project_image: str, podman_env: dict[str, str], postgres_url: str
):
    port = free_port()
    name = f"rollout-test-serve-{uuid.uuid4().hex[:8]}"
    try:
        podman(
            podman_env,
            "run",
            "--detach",
            "--name",
            name,
            "--network=host",
            "--env",
            f"ROLLOUT_DATABASE_URL={postgres_url}",
            "--env",
            f"ROLLOUT_FLAGS_FILE={EXAMPLES}/feature_flags.yaml",
            project_image,
            "serve",
            "--port",
            str(port),
        )
        wait_for_health(f"http://127.0.0.1:{port}")
        assert podman(podman_env, "healthcheck", "run", name, check=False).returncode == 0

        status = podman(
            podman_env, "exec", name, "rollout-dashboard", "status", "--env", "production", "--json"
        )
        document = json.loads(status.stdout)
        expected = load_config(BUNDLED_CONFIG, "production").flags
        assert document["environment"] == "production"
        assert {row["flag"]: row["percentage"] for row in document["flags"]} == {
            key: flag.percentage for key, flag in expected.items()
        }
    finally:
        remove_containers(podman_env, [name])


def test_without_its_database_the_container_is_unhealthy_and_says_why(
    project_image: str, podman_env: dict[str, str]
):
    name = f"rollout-test-unhealthy-{uuid.uuid4().hex[:8]}"
    url = f"postgresql+psycopg://rollout:{PASSWORD}@127.0.0.1:{closed_port()}/rollout"
    try:
        podman(
            podman_env,
            "run",
            "--detach",
            "--name",
            name,
            "--network=host",
            "--env",
            f"ROLLOUT_DATABASE_URL={url}",
            "--env",
            f"ROLLOUT_FLAGS_FILE={EXAMPLES}/feature_flags.yaml",
            project_image,
            "serve",
            "--port",
            str(free_port()),
        )
        assert podman(podman_env, "healthcheck", "run", name, check=False).returncode != 0
        probe = podman(podman_env, "exec", name, "rollout-dashboard", "healthcheck", check=False)
        assert probe.returncode == 4
        assert probe.stderr.startswith("unhealthy: metrics database unavailable: OperationalError")
        logged = podman(podman_env, "inspect", name).stdout
        assert "metrics database unavailable" in logged
        assert PASSWORD not in probe.stderr
        assert PASSWORD not in logged.replace(url, "")  # the URL is in the env it was given
    finally:
        remove_containers(podman_env, [name])


def test_under_an_arbitrary_uid_in_group_0_the_cli_acts_as_uid_n(
    project_image: str, podman_env: dict[str, str]
):
    """As OpenShift runs an image: a user id the image does not know, in group 0. The
    state directory is writable to it; the sql flag backend is filled from the sample
    flags on this first start; the audit log names the actor `uid-54321`."""
    script = (
        "rollout-dashboard rollback ab_testing --env production --to 10 --reason openshift"
        " --json >/dev/null && rollout-dashboard audit --json"
    )
    ran = podman(
        podman_env,
        "run",
        "--rm",
        *("--user", "54321:0"),
        "--passwd=false",  # podman would add a passwd entry; OpenShift does not
        *("--env", "ROLLOUT_FLAG_BACKEND=sql"),
        *("--env", f"ROLLOUT_FLAGS_FILE={EXAMPLES}/feature_flags.yaml"),
        *("--env", 'ROLLOUT_ROLES={"uid-54321": "operator"}'),
        *("--entrypoint", "sh", project_image, "-c", script),
    )
    records = json.loads(ran.stdout)["records"]
    assert [(r["actor"], r["action"], r["flag"], r["to"]["percentage"]) for r in records] == [
        ("uid-54321", "rollback", "ab_testing", 10.0)
    ]
