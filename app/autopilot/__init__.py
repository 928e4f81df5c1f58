"""The autopilot: rollout plans that advance on healthy gates and roll back by themselves.

`model` holds a plan's values, `decide` the rule of one tick (pure), `evidence` the bulk
questions a tick asks, `controller` the ticks and the lease, `store` the plans, events
and lease in the metrics database, `service` what a person does to a plan, `backtest`
what a plan would have done over the metrics history.
"""

from app.autopilot.model import (
    AUTOPILOT_ACTOR,
    AllowedHours,
    OnFailure,
    PlanInvalid,
    PlanStatus,
    RolloutPlan,
)

__all__ = [
    "AUTOPILOT_ACTOR",
    "AllowedHours",
    "OnFailure",
    "PlanInvalid",
    "PlanStatus",
    "RolloutPlan",
]
