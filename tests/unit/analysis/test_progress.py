from pathlib import Path

import pytest

from app.analysis.progress import PhaseStatus, phase_progress
from app.flags.loader import load_config

CONFIG = """
version: "1"
phases:
  - {number: 1, name: Config, planned_week: 1}
  - {number: 2, name: Health, planned_week: 2}
  - {number: 3, name: Metrics, planned_week: 3}
flags:
  p1_main:
    state: enabled
    metadata: {phase: 1}
  p1_sub:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 1, dependencies: [p1_main]}
  p2_main:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 2, dependencies: [p1_sub]}
  p2_sub:
    state: disabled
    rollout: {percentage: 30}
    metadata: {phase: 2}
  p3_main:
    state: enabled
    metadata: {phase: 3}
  p4_orphan:
    state: disabled
    metadata: {phase: 4}
"""


@pytest.fixture
def progress(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    return {p.phase: p for p in phase_progress(load_config(path))}


def test_progress_is_the_mean_rollout_share_of_the_phase_flags(progress):
    assert progress[1].progress == pytest.approx((100 + 50) / 200)
    assert progress[2].progress == pytest.approx((10 + 0) / 200)  # disabled counts 0 %
    assert progress[1].flags_complete == 1
    assert progress[1].flags == ("p1_main", "p1_sub")


def test_status_names_what_blocks_a_phase(progress):
    assert progress[1].status is PhaseStatus.ROLLING_OUT
    assert progress[1].blocked_by == ()  # a dependency inside the phase does not block it
    assert progress[2].status is PhaseStatus.BLOCKED
    assert progress[2].blocked_by == ("p1_sub",)
    assert progress[3].status is PhaseStatus.COMPLETE
    assert progress[4].status is PhaseStatus.NOT_STARTED


def test_phases_only_flags_mention_get_a_default_name(progress):
    assert progress[4].name == "Phase 4"
    assert progress[4].planned_week == 4
    assert progress[2].name == "Health"
