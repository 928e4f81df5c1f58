"""A day of Poisson evaluations as roll-ups, for a Prometheus backfilled by promtool: the
history a backtest replays (tests/integration/autopilot/test_backtest.py and
tests/bench/bench_backtest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from app.metrics_db.records import EvaluationRollup

__all__ = ["poisson_rollups"]

#: (share on the treatment, the treatment's error rate, the control's) at a slot's start
Split = Callable[[datetime], tuple[float, float, float]]


def poisson_rollups(
    environment: str,
    flag: str,
    start: datetime,
    end: datetime,
    split: Split,
    *,
    per_second: float = 20.0,
    slot: float = 30.0,
    seed: int = 0,
) -> list[EvaluationRollup]:
    """Roll-ups of `slot` seconds from `start` to `end`: per variant ("on", "off")
    Poisson evaluations at `per_second` in all, split as `split` says, failures binomial
    at each variant's error rate (reason `error`, counted in `errors` too: the seed's
    emitter); every series has a sample at every slot end, zeros included."""
    rng = np.random.default_rng(seed)
    rollups = []
    at = start
    step = timedelta(seconds=slot)
    while at < end:
        share, treated_rate, control_rate = split(at)
        for variant, part, rate in (("on", share, treated_rate), ("off", 1 - share, control_rate)):
            evaluated = int(rng.poisson(per_second * slot * part))
            failed = int(rng.binomial(evaluated, rate))
            rollups.append(
                EvaluationRollup(at, slot, environment, flag, variant, "split", evaluated - failed)
            )
            rollups.append(
                EvaluationRollup(at, slot, environment, flag, variant, "error", failed, failed)
            )
        at += step
    return rollups
