"""A `rollout-dashboard` command as a process of its own: the environment it starts from
(this one without any ROLLOUT_* setting, then the test's own) and running it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_environment(state: Path, database_url: str, operator: str, **more: str) -> dict[str, str]:
    """This process's environment without ROLLOUT_* settings, with the state directory,
    its flag file, `database_url`, `operator` as the one operator, no approvals, and
    `more`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    return {
        **clean,
        "ROLLOUT_STATE_DIR": str(state),
        "ROLLOUT_FLAGS_FILE": str(state / "feature_flags.yaml"),
        "ROLLOUT_DATABASE_URL": database_url,
        "ROLLOUT_ROLES": json.dumps({operator: "operator"}),
        "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",
        **more,
    }


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli *args` in `env` from the project's root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
