"""The demo's autopilot: two rollout plans seeded at start and the controller ticking
every few seconds, run by `rollout-dashboard demo` as a child process.

`phase1_pydantic_settings` (production, 10 %) ramps 25 → 50 % on healthy numbers. The
simulator makes the treatment of `phase1_environment_configs` (production, 5 %) fail from
25 % up (`simulator_options`): the autopilot advances it to 10 %, then 25 %, sees the
error rate fail and rolls it back to 10 % by itself, a few minutes after the demo opens.
Both demo flags depend on `phase1_config_externalization`, which is not at 100 %: their
plans gate on the five other guards, or the dependencies guard would hold them.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from app.rollout.guards import ADVANCE_GUARDS, GuardName

if TYPE_CHECKING:
    from app.autopilot.model import RolloutPlan
    from app.runtime import Runtime

__all__ = [
    "DEMO_PLANS",
    "autopilot_environment",
    "main",
    "seed_demo_plans",
    "simulator_options",
]

ENVIRONMENT = "production"
HEALTHY_FLAG = "phase1_pydantic_settings"
FAILING_FLAG = "phase1_environment_configs"
#: the failing flag's treatment fails this share of its evaluations …
FAILING_PERCENT = 40
#: … once the flag is at this percentage or more
FAILING_FROM = 25.0
STEPS = (5.0, 10.0, 25.0, 50.0)
SOAK = timedelta(seconds=45)
GATES = frozenset(ADVANCE_GUARDS) - {GuardName.DEPENDENCIES}
DEMO_PLANS = (HEALTHY_FLAG, FAILING_FLAG)
#: who sets the demo's plans (the audit names it)
SEEDED_BY = "demo-seed"

#: the controller's settings in the demo: a tick every 5 s, a one-minute window, and
#: more patience for data than in production while the simulator starts
SETTINGS = {
    "ROLLOUT_AUTOPILOT_INTERVAL_SECONDS": "5",
    "ROLLOUT_AUTOPILOT_WINDOW_SECONDS": "60",
    "ROLLOUT_AUTOPILOT_LEASE_SECONDS": "20",
    "ROLLOUT_AUTOPILOT_PAUSE_AFTER_TICKS": "24",
}


def autopilot_environment() -> dict[str, str]:
    """The environment variables the demo's processes share for the autopilot (a value
    set by the person starting the demo is kept)."""
    return {name: os.environ.get(name, value) for name, value in SETTINGS.items()}


def simulator_options() -> list[str]:
    """The simulator's options for the demo's regression."""
    return ["--failing-treatment", f"{FAILING_FLAG}:{FAILING_PERCENT}@{FAILING_FROM:g}"]


def seed_demo_plans(runtime: Runtime, now: datetime) -> list[RolloutPlan]:
    """The two demo plans, when the metrics database holds no plan yet (a restarted demo
    keeps what happened); the plans set, or [] when there were plans already."""
    from app.autopilot.model import PlanOptions
    from app.autopilot.service import set_plan
    from app.rollout.roles import Identity, Role

    store = runtime.plans
    if store.plans():
        return []
    identity = Identity(SEEDED_BY, Role.OPERATOR, "demo")
    snapshot = runtime.backend.load(ENVIRONMENT)
    options = PlanOptions(steps=STEPS, soak=SOAK, gates=GATES)
    return [
        set_plan(store, runtime.audit, identity, snapshot, flag, options, now=now)
        for flag in DEMO_PLANS
    ]


def main() -> int:
    """Seed the plans, then run the controller until SIGTERM / SIGINT or until the demo
    that started this process is gone."""
    from app.autopilot.runner import run_controller
    from app.autopilot.store import PlansUnavailable
    from app.runtime import open_runtime
    from app.settings import load_settings

    stop = threading.Event()
    runtime = open_runtime(load_settings())
    try:
        for plan in seed_demo_plans(runtime, datetime.now(UTC)):
            print(f"demo autopilot: plan set for {plan.flag}: {plan.text}", flush=True)
    except PlansUnavailable as error:
        print(f"demo autopilot: no plans seeded: {error}", file=sys.stderr, flush=True)
    parent = os.getppid()

    def orphaned() -> None:  # never outlive the demo that started us
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=orphaned, daemon=True).start()
    return run_controller(
        runtime.autopilot(holder=f"demo:{os.getpid()}"),
        stop,
        on_signals=True,
        # what terminal commands handed over (their webhooks never delay them)
        after_leading_tick=runtime.notifier.deliver_handed_over,
    )


if __name__ == "__main__":
    sys.exit(main())
