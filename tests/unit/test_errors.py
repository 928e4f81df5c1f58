"""Every error the project raises on purpose is a `RolloutError` and keeps its old base."""

from __future__ import annotations

import pytest

from app.approvals.store import ApprovalsUnavailable, DuplicateRequest
from app.audit import DuplicateKey
from app.autopilot.model import PlanInvalid
from app.autopilot.store import PlanChanged, PlansUnavailable
from app.cli.arguments import UsageError
from app.demo.unleash_server import UnleashNotInstalled
from app.errors import RolloutError
from app.flags.conditions import ConditionError
from app.flags.loader import ConfigInvalid
from app.flags.yaml_limits import YamlRejected
from app.rollout.action_model import ActionConflict, ActionRefused, InvalidRequest
from app.rollout.ladder import LadderEnd
from app.rollout.roles import NotAuthorized
from app.settings import SettingsInvalid
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
    (InvalidRequest, ValueError),
    (ActionConflict, ValueError),
    (ActionRefused, ValueError),
    (DuplicateKey, RuntimeError),
    (LadderEnd, ValueError),
    (NotAuthorized, PermissionError),
    (SettingsInvalid, ValueError),
    (SourceUnavailable, RuntimeError),
]


@pytest.mark.parametrize(("error", "kept"), KEPT_BASES, ids=lambda c: c.__name__)
def test_each_error_is_a_rollout_error_and_keeps_its_base(error: type, kept: type) -> None:
    assert issubclass(error, RolloutError)
    assert issubclass(error, kept)
