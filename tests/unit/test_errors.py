"""Every error the project raises on purpose is a `RolloutError` and keeps its old base."""

from __future__ import annotations

import pytest

from app.approvals.store import ApprovalsUnavailable, DuplicateRequest
from app.audit import DuplicateKey
from app.autopilot.backtest import NoHistory
from app.autopilot.model import PlanInvalid
from app.autopilot.store import PlanChanged, PlansUnavailable
from app.autopilot.telemetry import MetricsPortUnavailable
from app.cli.arguments import UsageError
from app.demo.unleash_server import UnleashNotInstalled
from app.errors import RolloutError
from app.flags.backend import PartiallyApplied, UnknownFlag, VersionConflict
from app.flags.conditions import ConditionError
from app.flags.loader import ConfigInvalid
from app.flags.yaml_limits import YamlRejected
from app.guardrails import GuardrailsInvalid
from app.metrics_db.revisions import MigrationRefused, SchemaNotCurrent
from app.rollout.action_model import ActionConflict, ActionRefused, InvalidRequest
from app.rollout.approval_gate import GateUnavailable
from app.rollout.ladder import LadderEnd
from app.rollout.roles import NotAuthorized
from app.settings import SettingsInvalid
from app.unleash.api import TestFailed, UnleashRefused, UnleashUnavailable
from app.unleash.metrics_sync import UnleashMetricsInvalid
from queries.source import SourceUnavailable

KEPT_BASES = [
    (ApprovalsUnavailable, RuntimeError),
    (DuplicateRequest, RuntimeError),
    (PlanInvalid, ValueError),
    (PlanChanged, RuntimeError),
    (PlansUnavailable, RuntimeError),
    (UsageError, ValueError),
    (UnleashNotInstalled, RuntimeError),
    (ConditionError, ValueError),
    (ConfigInvalid, ValueError),
    (YamlRejected, ValueError),
    (GuardrailsInvalid, ValueError),
    (NoHistory, RuntimeError),
    (InvalidRequest, ValueError),
    (ActionConflict, ValueError),
    (ActionRefused, ValueError),
    (DuplicateKey, RuntimeError),
    (LadderEnd, ValueError),
    (NotAuthorized, PermissionError),
    (SettingsInvalid, ValueError),
    (SourceUnavailable, RuntimeError),
    (UnknownFlag, KeyError),
    (VersionConflict, RuntimeError),
    (PartiallyApplied, RuntimeError),
    (UnleashRefused, RuntimeError),
    (TestFailed, RuntimeError),
    (UnleashMetricsInvalid, ValueError),
    (UnleashUnavailable, SourceUnavailable),
    (GateUnavailable, RolloutError),
    (SchemaNotCurrent, RuntimeError),
    (MigrationRefused, ValueError),
    (MetricsPortUnavailable, OSError),
]


@pytest.mark.parametrize(("error", "kept"), KEPT_BASES, ids=lambda c: c.__name__)
def test_each_error_is_a_rollout_error_and_keeps_its_base(error: type, kept: type) -> None:
    assert issubclass(error, RolloutError)
    assert issubclass(error, kept)


def test_no_public_error_class_of_the_project_is_left_out():
    """Every public exception class defined in app/ or queries/ is in the list above."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    named = {error.__name__ for error, _ in KEPT_BASES}
    found = set()
    for path in [*root.joinpath("app").rglob("*.py"), *root.joinpath("queries").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) or b in named for b in bases):
                    found.add(node.name)
    assert found - named - {"RolloutError"} == set()
