"""How many project files a Kill crosses: `rollout-dashboard rollback FLAG --kill` run in
this interpreter on a YAML file and a fresh SQLite database: the project files it loads
(imports included), and the files whose functions a second Kill, in the warmed process,
calls — the path of the click itself. A figure of the code's shape for the closing
notes, not a timing: `python -m tests.bench.kill_path`."""

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
  search_v2:
    state: rollout
    rollout: {strategy: percentage, percentage: 25}
    metadata: {phase: 1}
"""


def crossed_files() -> tuple[int, list[str], list[str]]:
    """The exit code, the project files loaded, and those whose functions ran."""
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
    ran: set[str] = set()

    def recorder(into: set[str]) -> Any:
        def profile(frame: FrameType, event: str, _arg: Any) -> None:
            name = frame.f_code.co_filename
            if event == "call" and name.startswith(str(ROOT)):
                relative = name[len(str(ROOT)) + 1 :]
                if relative.startswith(("app/", "queries/")):
                    into.add(relative)

        return profile

    def kill(flag: str, into: set[str]) -> int:
        sys.setprofile(recorder(into))
        try:
            return int(main(["rollback", flag, "--kill", "--reason", "x", "--actor", "oncall"]))
        finally:
            sys.setprofile(None)

    code = kill("checkout_v2", files)
    code = max(code, kill("search_v2", ran))
    return code, sorted(files), sorted(ran)


if __name__ == "__main__":
    code, files, ran = crossed_files()
    migrations = [f for f in files if "/migrations/" in f]
    loaded = len(files) - len(migrations)
    print(f"exit {code}; files loaded: {loaded} (+{len(migrations)} migrations)")
    print(f"files whose functions ran (the files a Kill crosses): {len(ran)}")
    for name in ran:
        print(" ", name)
