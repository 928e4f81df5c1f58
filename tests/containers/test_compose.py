"""deploy/compose.yaml brought up for real with podman-compose (the stand-in PostgreSQL
and Prometheus images in place of the official ones): the dashboard becomes healthy, a
flag is killed through the dashboard's CLI in its container, the other containers see
it, the dashboard turns unhealthy while PostgreSQL is stopped and healthy once it is
back, and the stack goes down with its volumes."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from app.flags.loader import BUNDLED_CONFIG, load_config
from app.flags.model import FlagState
from tests.containers.conftest import StandIns
from tests.support.podman import ROOT, podman, wait_for_health, wait_until_healthy
from tests.support.servers import free_port

pytestmark = pytest.mark.podman

COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
SERVICES = (
    "postgres",
    "prometheus",
    "flags",
    "dashboard",
    "autopilot-1",
    "autopilot-2",
    "simulator",
)


def compose_command(project: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "podman-compose"),
        "-p",
        project,
        "-f",
        str(COMPOSE_FILE),
    ]


def container(project: str, service: str) -> str:
    return f"{project}_{service}_1"


def a_rolling_flag() -> str:
    """A production flag of the sample config in state rollout, above 0 %."""
    flags = load_config(BUNDLED_CONFIG, "production").flags
    return next(
        key
        for key, flag in flags.items()
        if flag.state is FlagState.ROLLOUT and flag.percentage > 0
    )


def test_the_compose_file_names_every_service_and_overridable_images():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert tuple(document["services"]) == SERVICES
    images = {name: service["image"] for name, service in document["services"].items()}
    assert images["postgres"].startswith("${ROLLOUT_POSTGRES_IMAGE:-docker.io/library/postgres:")
    assert images["prometheus"].startswith("${ROLLOUT_PROMETHEUS_IMAGE:-docker.io/prom/prometheus:")
    for name in ("flags", "dashboard", "autopilot-1", "autopilot-2", "simulator"):
        assert images[name] == "${ROLLOUT_IMAGE:-localhost/rollout-dashboard:latest}"


def test_the_stack_comes_up_acts_on_a_flag_and_goes_down(
    project_image: str, stand_in_images: StandIns, podman_env: dict[str, str]
):
    project = f"rollouttest{uuid.uuid4().hex[:8]}"
    port = free_port()
    password = secrets.token_hex(12)
    env = podman_env | {
        "ROLLOUT_IMAGE": project_image,
        "ROLLOUT_POSTGRES_IMAGE": stand_in_images.postgres,
        "ROLLOUT_PROMETHEUS_IMAGE": stand_in_images.prometheus,
        "ROLLOUT_DASHBOARD_PORT": str(port),
        "ROLLOUT_POSTGRES_PASSWORD": password,
    }
    compose = compose_command(project)
    dashboard = container(project, "dashboard")
    flag = a_rolling_flag()
    try:
        up = subprocess.run(
            [*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stderr[-3000:]
        started = time.monotonic()
        wait_for_health(f"http://127.0.0.1:{port}", timeout=180)
        wait_until_healthy(env, dashboard, timeout=180)
        print(f"\ncompose up -> dashboard healthy: {time.monotonic() - started:.1f} s")

        # readiness: the dashboard reaches Prometheus, which loaded the shipped rules
        ready = podman(env, "exec", dashboard, "rollout-dashboard", "healthcheck", "--ready")
        assert ready.stdout == "ok: metrics database, flag backend, metrics source answered\n"
        rules = podman(
            env,
            "exec",
            dashboard,
            "python",
            "-c",
            "import requests; print(requests.get('http://prometheus:9090/api/v1/rules').text)",
        )
        loaded = {group["name"] for group in json.loads(rules.stdout)["data"]["groups"]}
        shipped = {
            group["name"]
            for rules in (ROOT / "deploy" / "prometheus").glob("*.rules.yml")
            for group in yaml.safe_load(rules.read_text())["groups"]
        }
        assert loaded == shipped

        killed = podman(
            env,
            "exec",
            "--env",
            'ROLLOUT_ROLES={"oncall": "operator"}',
            dashboard,
            "rollout-dashboard",
            "rollback",
            flag,
            "--kill",
            "--env",
            "production",
            "--reason",
            "compose stack test",
            "--actor",
            "oncall",
            "--json",
            check=False,
        )
        assert killed.returncode == 0, killed.stderr
        result = json.loads(killed.stdout)
        assert result["applied"] is True
        assert result["to"] == {"state": "disabled", "percentage": 0.0}

        # the flags volume: the autopilot's container reads the flag as killed
        status = podman(
            env,
            "exec",
            container(project, "autopilot-2"),
            "rollout-dashboard",
            "status",
            "--env",
            "production",
            "--json",
            check=False,
        )
        rows = {row["flag"]: row for row in json.loads(status.stdout)["flags"]}
        assert (rows[flag]["state"], rows[flag]["percentage"]) == ("disabled", 0.0)
        # PostgreSQL: the other autopilot's container lists the audit record
        audit = podman(
            env,
            "exec",
            container(project, "autopilot-1"),
            "rollout-dashboard",
            "audit",
            "--flag",
            flag,
            "--json",
        )
        records = json.loads(audit.stdout)["records"]
        assert [(r["actor"], r["outcome"], r["reason"]) for r in records] == [
            ("oncall", "applied", "compose stack test")
        ]
        assert records[0]["id"] == result["audit_id"]

        # PostgreSQL stopped: the dashboard's probe fails naming it, never its password
        podman(env, "stop", container(project, "postgres"))
        probe = podman(env, "exec", dashboard, "rollout-dashboard", "healthcheck", check=False)
        assert probe.returncode == 4
        assert probe.stderr.startswith("unhealthy: metrics database unavailable: OperationalError")
        assert len(probe.stderr.splitlines()) == 1
        assert password not in probe.stderr
        assert podman(env, "healthcheck", "run", dashboard, check=False).returncode != 0
        podman(env, "start", container(project, "postgres"))
        wait_until_healthy(env, dashboard, timeout=120)
    finally:
        down = subprocess.run(
            [*compose, "down", "--volumes"], env=env, capture_output=True, text=True, timeout=300
        )
    assert down.returncode == 0, down.stderr[-3000:]
    left = podman(env, "ps", "--all", "--filter", f"name={project}", "--format", "{{.Names}}")
    assert left.stdout.strip() == ""
    volumes = podman(env, "volume", "ls", "--filter", f"name={project}", "--format", "{{.Name}}")
    assert volumes.stdout.strip() == ""
