"""deploy/kubernetes: every document valid against the Kubernetes schemas
(kubernetes-validate, offline, strict), and the promises a platform team relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from app.flags.loader import check_config
from tests.support.podman import IMAGE_UID, ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
#: the oldest Kubernetes still supported by its upstream when this was written, and the
#: newest kubernetes-validate knows
VERSIONS = ("1.31.0", latest_version())


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def named(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def pod_of(kind: str, name: str) -> dict[str, Any]:
    return named(kind, name)["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str):
    kinds = []
    for document in documents():
        kubernetes_validate.validate(document, version, strict=True)  # raises when invalid
        kinds.append(document["kind"])
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Job", "Service"]


def test_an_invalid_manifest_is_refused():
    broken = named("Deployment", "rollout-autopilot") | {"spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


@pytest.mark.parametrize(("name", "replicas"), [("rollout-dashboard", 2), ("rollout-autopilot", 2)])
def test_deployments_probe_with_the_healthcheck_and_request_resources(name: str, replicas: int):
    deployment = named("Deployment", name)
    assert deployment["spec"]["replicas"] == replicas
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["exec"]["command"] == ["rollout-dashboard", "healthcheck"]
    assert container["readinessProbe"]["exec"]["command"] == [
        "rollout-dashboard",
        "healthcheck",
        "--ready",
    ]
    # a probe's own timeout exceeds the three dependencies' default 3 s each
    assert container["livenessProbe"]["timeoutSeconds"] > 9
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsNonRoot"], security["runAsUser"]) == (True, IMAGE_UID)


def test_the_service_keeps_a_viewer_on_one_pod_for_streamlits_websocket():
    service = named("Service", "rollout-dashboard")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    selector = service["spec"]["selector"]
    labels = named("Deployment", "rollout-dashboard")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_the_migration_job_upgrades_the_database():
    (container,) = pod_of("Job", "rollout-dashboard-migrate")["containers"]
    assert container["args"] == ["db", "upgrade"]
    assert named("ConfigMap", "rollout-dashboard")["data"]["ROLLOUT_AUTO_MIGRATE"] == "false"


def test_secrets_are_only_referenced():
    assert not [d for d in documents() if d["kind"] == "Secret"]
    for kind, name in [
        ("Deployment", "rollout-dashboard"),
        ("Deployment", "rollout-autopilot"),
        ("Job", "rollout-dashboard-migrate"),
    ]:
        pod = pod_of(kind, name)
        env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
        by_reference = env.get("ROLLOUT_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef")
        by_file = env.get("ROLLOUT_DATABASE_URL_FILE", {}).get("value")
        assert by_reference == {"name": "rollout-dashboard", "key": "database-url"} or (
            by_file == "/run/secrets/rollout/database-url"
            and any(
                v.get("secret", {}).get("secretName") == "rollout-dashboard" for v in pod["volumes"]
            )
        ), f"{kind} {name}"
    assert "postgresql" not in (MANIFESTS / "configmap.yaml").read_text()


def test_the_flags_configmap_is_a_valid_flag_configuration(tmp_path: Path):
    for file_name, text in named("ConfigMap", "rollout-dashboard-flags")["data"].items():
        (tmp_path / file_name).write_text(text)
    assert check_config(tmp_path / "feature_flags.yaml") == []
