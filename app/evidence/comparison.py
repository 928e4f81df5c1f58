"""Treatment against control over one window, judged as the treatment-vs-control gate
judges it (`app.evidence.gates`): the always-valid interval of treatment − control
(`app.evidence.sequential.difference_intervals`) at the level of one window of the plan's
false-action budget. "Worse" means that interval lies above the allowed difference: the
gate's e-value over the same counts has reached its threshold. A view that shows the
comparison (the overview's health, `status`, the Flag detail's health line) therefore
never calls worse what the gate would not act on, however often it is looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.evidence.gates import GateSettings
from app.evidence.sequential import Arm, difference_intervals

__all__ = ["VariantComparison", "compare_variants", "gate_alpha", "points"]


def points(difference: float) -> str:
    """'+0.10 pt', '−1.25 pt': a difference of rates in percentage points."""
    sign = "+" if difference >= 0 else "−"
    return f"{sign}{100 * abs(difference):.2f} pt"


def gate_alpha(settings: GateSettings) -> float:
    """The level of one window of the treatment-vs-control gate at `settings`' budget:
    the level its always-valid intervals are drawn at."""
    return math.exp(-settings.thresholds().step)


@dataclass(frozen=True)
class VariantComparison:
    """The treatment's failed evaluations against the control's over one window, with
    the always-valid interval of the difference (None until both arms have events)."""

    treatment: str
    control: str
    treated: Arm
    base: Arm
    interval: tuple[float, float] | None
    allowed: float = 0.0  # the difference the gate allows (`GateSettings.max_difference`)

    @property
    def difference(self) -> float | None:
        if self.treated.rate is None or self.base.rate is None:
            return None
        return self.treated.rate - self.base.rate

    @property
    def worse(self) -> bool:
        """The interval lies above the allowed difference: proven worse."""
        return self.interval is not None and self.interval[0] > self.allowed

    @property
    def summary(self) -> str:
        """'on − off +0.70 pt (always-valid interval +0.21 pt…+1.40 pt)'."""
        difference = self.difference
        versus = f"{self.treatment} − {self.control}"
        if difference is None:
            return f"{versus}: no evaluations of one of them yet"
        said = f"{versus} {points(difference)}"
        if self.interval is not None:
            low, high = self.interval
            said += f" (always-valid interval {points(low)}…{points(high)})"
        return said

    @property
    def short(self) -> str:
        """'on − off +0.70 pt: proven worse': the overview's reason (its interval is on
        Flag detail)."""
        if self.difference is None:
            return self.summary
        verdict = "proven worse" if self.worse else "not proven worse"
        return f"{self.treatment} − {self.control} {points(self.difference)}: {verdict}"

    @property
    def words(self) -> str:
        """The summary and the verdict: '…: proven worse', '…: not proven worse'."""
        if self.difference is None:
            return self.summary
        return f"{self.summary}: {'proven worse' if self.worse else 'not proven worse'}"


def compare_variants(
    pairs: Sequence[tuple[str, Arm, str, Arm]], settings: GateSettings
) -> list[VariantComparison]:
    """Each (treatment, its counts, control, its counts) compared at once: one
    vectorised interval computation for every flag of an overview."""
    if not pairs:
        return []
    treated = np.array([[t.bad, t.total] for _, t, _, _ in pairs], dtype=np.float64)
    base = np.array([[c.bad, c.total] for _, _, _, c in pairs], dtype=np.float64)
    low, high = difference_intervals(
        (treated[:, 0], treated[:, 1]), (base[:, 0], base[:, 1]), gate_alpha(settings)
    )
    return [
        VariantComparison(
            name,
            control,
            t,
            c,
            None if math.isnan(lo) else (float(lo), float(hi)),
            settings.max_difference,
        )
        for (name, t, control, c), lo, hi in zip(pairs, low, high, strict=True)
    ]
