"""Guard inputs as the gatherer builds them, from totals since the step began: the
counts are spread evenly over the step's slots and judged by the real data gates
(`app.evidence.gates.judge_flag`), so a test states what a person would read ("4 % of
10,000 evaluations failed since the step began 40 min ago") and gets the gates the
guards and the autopilot judge."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from app.analysis.failures import FlagErrors
from app.evidence.gates import FlagSlots, VariantSlots, judge_flag
from app.rollout.evidence import judged_start
from app.rollout.guards import GuardInputs, GuardPolicy, VariantCounts
from queries.names import ErrorsIn


def judged_inputs(
    policy: GuardPolicy,
    *,
    now: datetime,
    at_step_since: datetime | None,
    percentage: float,
    variants: Mapping[str, VariantCounts] | None,
    errors: FlagErrors | None = None,
    treatment: str = "on",
    baseline: str = "off",
    **rest: object,
) -> GuardInputs:
    """`GuardInputs` whose data gates judge `variants` (and `errors`, where the error
    counter counts failures) as counted evenly since the step began; None variants: no
    source answered."""
    start, words = judged_start(at_step_since, now, policy)
    slot = policy.slots.slot
    ends = start + slot * np.arange(1, int((now.timestamp() - start) // slot) + 1)
    gates = None
    if variants is not None and len(ends):
        share = 1 / len(ends)
        spread = {
            name: VariantSlots(
                np.full(len(ends), counts.evaluations * share),
                np.full(len(ends), counts.errors * share),
                np.full(len(ends), counts.split * share),
            )
            for name, counts in variants.items()
        }
        read_from = ErrorsIn.REASON if errors is None else errors.read_from
        counter = np.full(len(ends), (errors.failed if errors else 0.0) * share)
        slots = FlagSlots(ends, spread, counter)
        gates = judge_flag(
            slots.gate_slots(read_from, treatment, baseline),
            start,
            now.timestamp(),
            percentage / 100,
            policy.gate_settings(),
            words,
        )
    return GuardInputs(
        now=now,
        configured_percentage=percentage,
        treatment=treatment,
        baseline=baseline,
        variants=variants,
        errors=errors,
        at_step_since=at_step_since,
        gates=gates,
        window=words,
        **rest,  # type: ignore[arg-type]
    )


def last_whole_slot(at: datetime | None = None, slot: float = 30.0) -> datetime:
    """The end of the last whole slot at or before `at` (now): the newest counts a guard
    or a tick judges (`app.evidence.windows.slot_end_at_or_before`)."""
    moment = (at or datetime.now(UTC)).timestamp()
    return datetime.fromtimestamp(moment // slot * slot, tz=UTC)
