"""How many project files a Kill crosses: `rollout-dashboard rollback FLAG --kill` run in
this interpreter on a one-flag YAML file and a fresh SQLite database, every Python call
into `app/` or `queries/` recorded (migrations counted apart). A figure of the code's
shape for the closing notes, not a timing: `python -m tests.bench.kill_path`."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FLAGS = """version: "1.0.0"
flags:
  checkout_v2:
    state: rollout
    rollout: {strategy: percentage, percentage: 25}
    metadata: {phase: 1}
"""


def crossed_files() -> tuple[int, list[str]]:
    state = Path(tempfile.mkdtemp(prefix="kill-path-"))
    (state / "flags.yaml").write_text(FLAGS)
    os.environ.update(
        ROLLOUT_FLAGS_FILE=str(state / "flags.yaml"),
        ROLLOUT_DATABASE_URL=f"sqlite:///{state / 'metrics.db'}",
        ROLLOUT_PROMETHEUS_URL="http://127.0.0.1:9",
        ROLLOUT_ENVIRONMENT="production",
        ROLLOUT_ROLES='{"oncall": "operator"}',
    )
    from app.cli import main

    files: set[str] = set()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(str(ROOT)):
            relative = name[len(str(ROOT)) + 1 :]
            if relative.startswith(("app/", "queries/")):
                files.add(relative)

    sys.setprofile(profile)
    try:
        code = main(["rollback", "checkout_v2", "--kill", "--reason", "x", "--actor", "oncall"])
    finally:
        sys.setprofile(None)
    return int(code or 0), sorted(files)


if __name__ == "__main__":
    code, files = crossed_files()
    migrations = [f for f in files if "/migrations/" in f]
    crossed = len(files) - len(migrations)
    print(f"exit {code}; files crossed: {crossed} (+{len(migrations)} migrations)")
    for name in files:
        if name not in migrations:
            print(" ", name)
