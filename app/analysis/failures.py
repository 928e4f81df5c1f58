"""A flag's failed evaluations: one definition, read by every view (docs/design.md §8).

An emitter counts a failed evaluation in its error counter, as an evaluation with reason
`error`, or both (`queries.names.ErrorsIn`). Every source answers both questions, the
counter's count by flag and the evaluations by variant and reason, over one window;
`flag_errors` reads the failures where the emitter counts them, each once. The
overview, the advance guard, the autopilot (and through them the webhooks and the audit
record) all take the flag-level error rate from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from app.analysis.health import error_ratio
from queries.names import ErrorsIn

__all__ = [
    "FlagErrors",
    "VariantTally",
    "errors_by_flag",
    "failures_carry_variants",
    "flag_errors",
    "is_error_reason",
    "reason_errors",
]


class VariantTally(Protocol):
    """One variant's evaluations over the window and those of them with reason `error`
    (`app.rollout.guards.VariantCounts`)."""

    @property
    def evaluations(self) -> float: ...

    @property
    def errors(self) -> float: ...


def is_error_reason(reason: object) -> bool:
    """Whether an evaluation's reason says it failed: `error` in any case (OpenFeature
    writes ERROR, the seed error); a missing reason (None, NaN) is not."""
    if reason is None or (isinstance(reason, float) and math.isnan(reason)):
        return False
    return str(reason).lower() == "error"


@dataclass(frozen=True)
class FlagErrors:
    """A flag's failed evaluations over one window, each counted once, out of all its
    evaluations over the same window (with the failed ones, wherever the emitter counts
    them); `read_from` says where the failures were read."""

    failed: float
    evaluations: float
    read_from: ErrorsIn

    @property
    def rate(self) -> float | None:
        """Failed over all evaluations (at most 1); None when nothing was evaluated."""
        return error_ratio(self.evaluations, self.failed)

    @property
    def per_variant(self) -> bool:
        """Whether each variant's reason-`error` evaluations are its failures: not when the
        emitter counts them only in its counter, which carries no variant."""
        return failures_carry_variants(self.read_from)


def failures_carry_variants(errors_in: ErrorsIn) -> bool:
    """Whether an emitter counting failures `errors_in` gives the variant on each: its
    reason-`error` evaluations are then each variant's failures. Not so for COUNTER (the
    error counter has no variant label): no treatment-against-control error test."""
    return errors_in is not ErrorsIn.COUNTER


def flag_errors(
    errors_in: ErrorsIn, variants: Iterable[VariantTally], counter: float
) -> FlagErrors:
    """The flag's failures from the two answers: `counter`, what its error counter counted
    (0 without a series), and `variants`, its evaluations by variant with those of reason
    `error`. COUNTER and BOTH read the counter alone (BOTH also counts each failure as a
    reason-`error` evaluation: adding those would count it twice); REASON reads those."""
    tallies = list(variants)
    evaluations = float(sum(v.evaluations for v in tallies))
    by_reason = float(sum(v.errors for v in tallies))
    failed = by_reason if errors_in is ErrorsIn.REASON else float(counter)
    return FlagErrors(failed, evaluations, errors_in)


def reason_errors(variants: Iterable[VariantTally]) -> FlagErrors:
    """`flag_errors` where no counter answered: the reason-`error` evaluations."""
    return flag_errors(ErrorsIn.REASON, variants, 0.0)


def errors_by_flag(
    errors_in: ErrorsIn,
    counts: Mapping[str, Mapping[str, VariantTally]],
    counter: Mapping[str, float],
) -> dict[str, FlagErrors]:
    """`flag_errors` of every flag with evaluations (`counts`: flag → variant → tally) or
    a counter series (`counter`: flag → failures), over the same window."""
    return {
        flag: flag_errors(errors_in, counts.get(flag, {}).values(), counter.get(flag, 0.0))
        for flag in sorted(set(counts) | set(counter))
    }
