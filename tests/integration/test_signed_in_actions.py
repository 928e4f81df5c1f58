"""A signed-in person the roles do not name is a viewer, and the action function refuses
them even when called directly (a forged call from a page): nothing written, no audit row."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.audit import AuditLog
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role, role_for
from tests.support.bundled import copy_bundled_config

ROLES = {"alice@example.com": Role.OPERATOR, "group:admins": Role.ADMIN}


def passing(_snapshot, _flag):
    return [GuardResult("data_fresh", True, 1.0, 120, "fresh")]


def signed_in(email: str, groups: list[str]) -> Identity:
    """The identity the dashboard builds from the ID token (app/ui/widgets.py)."""
    return Identity(email, role_for(email, groups, ROLES, Role.VIEWER), "oidc")


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return copy_bundled_config(tmp_path)


def _files(flags: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(flags.parent.glob("feature_flags*.yaml"))}


@pytest.mark.parametrize(
    ("action", "flag", "override"),
    [
        (Action.ADVANCE, "ab_testing", False),
        (Action.ADVANCE, "ab_testing", True),
        (Action.ROLLBACK, "ab_testing", False),
        (Action.KILL, "ab_testing", False),
        (Action.EMERGENCY, None, False),
    ],
)
def test_an_unmapped_signed_in_user_is_refused_by_a_direct_call(
    flags, tmp_path, action, flag, override
):
    victor = signed_in("victor@example.com", ["oncall"])
    assert victor.role is Role.VIEWER
    audit = AuditLog(open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), tmp_path / "j.jsonl")
    before = _files(flags)
    request = ActionRequest(
        action, "production", "forged", victor, flag=flag, override_guards=override
    )
    result = execute_action(request, YamlFlagBackend(flags), audit, passing)
    assert result.exit_code is ExitCode.REFUSED and not result.applied
    assert "victor@example.com is viewer" in (result.error or "")
    assert _files(flags) == before
    assert audit.entries() == []
    assert not (tmp_path / "j.jsonl").exists() or (tmp_path / "j.jsonl").read_text() == ""
