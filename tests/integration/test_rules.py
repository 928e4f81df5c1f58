"""The shipped recording and alerting rules load in Prometheus and record what they say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.prometheus

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
#: 7 recording rules (the overview's expressions) + 3 alerts
EXPECTED_RULES = 10


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("`promtool` not found: apt-get install -y prometheus")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, cwd=RULES_DIR, check=False, timeout=60
    )


def test_rules_pass_promtool_check_with_every_rule() -> None:
    result = _promtool("check", "rules", "rollout.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    assert int(found.group(1)) == EXPECTED_RULES


def test_rules_record_and_alert_as_their_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "rollout.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_autopilot_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "autopilot.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    assert int(found.group(1)) == 3  # no leader ticking, paused without data, webhook failing


def test_autopilot_alerts_fire_as_their_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "autopilot.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
