"""One autopilot controller as a process of its own, configured by the ROLLOUT_*
settings of its environment, for the failover tests and benchmark:

    python -m tests.support.autopilot_process HOLDER [--stall-at POINT --marker FILE]

It ticks (`Runtime.autopilot(HOLDER).run`) until SIGTERM, then releases its lease. With
`--stall-at`, its first autopilot action stops at POINT, writes FILE and waits there for
ever, so a test can `kill -9` it exactly mid-tick:
- `before-apply`: the pending audit record is written, the flag not yet changed;
- `after-apply`: the flag is changed, its audit record still pending;
- `after-settle`: the record is settled applied, the plan not yet updated.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from app.autopilot.model import RolloutPlan
from app.autopilot.store import PlanStore
from app.flags.backend import FlagBackend, FlagChange, FlagSnapshot
from app.runtime import open_runtime
from app.settings import load_settings

STALL_POINTS = ("before-apply", "after-apply", "after-settle")


def _stall(marker: Path) -> None:
    marker.write_text(f"{time.time()!r}\n")
    while True:
        time.sleep(3600)


class _StallingBackend:
    """The real backend, stopping before or after its first write."""

    def __init__(self, backend: FlagBackend, point: str, marker: Path) -> None:
        self._backend = backend
        self._point = point
        self._marker = marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def apply(
        self, environment: str, changes: Sequence[FlagChange], expected: Mapping[str, str]
    ) -> FlagSnapshot:
        if self._point == "before-apply":
            _stall(self._marker)
        fresh = self._backend.apply(environment, changes, expected)
        if self._point == "after-apply":
            _stall(self._marker)
        return fresh


class _StallingPlans(PlanStore):
    """The real plan store, stopping before it saves the plan after an action."""

    def __init__(self, store: PlanStore, marker: Path) -> None:
        super().__init__(store._engine)
        self._marker = marker

    def save(self, plan: RolloutPlan) -> RolloutPlan:
        if plan.actions_taken >= 1:
            _stall(self._marker)
        return super().save(plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.autopilot_process")
    parser.add_argument("holder")
    parser.add_argument("--stall-at", choices=STALL_POINTS)
    parser.add_argument("--marker", type=Path)
    args = parser.parse_args(argv)
    runtime = open_runtime(load_settings())
    controller = runtime.autopilot(args.holder)
    if args.stall_at in ("before-apply", "after-apply"):
        controller.backend = _StallingBackend(controller.backend, args.stall_at, args.marker)  # type: ignore[assignment]
    elif args.stall_at == "after-settle":
        controller.store = _StallingPlans(controller.store, args.marker)
    stop = threading.Event()

    def stopping(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    print(f"autopilot {args.holder} ticking", flush=True)
    controller.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
