"""Evidence a gate acts on (docs/design.md §8): always-valid tests of counts
(`sequential`), the windows cut from slots on one grid (`windows`), and the data gates
of a step judged on them (`gates`)."""

from app.evidence.gates import FlagGates, FlagSlots, GateSettings, Judgement, judge_gates
from app.evidence.sequential import Arm, Hypothesis, WindowKind, difference_interval
from app.evidence.windows import WindowPlan, gate_windows, judged_since

__all__ = [
    "Arm",
    "FlagGates",
    "FlagSlots",
    "GateSettings",
    "Hypothesis",
    "Judgement",
    "WindowKind",
    "WindowPlan",
    "difference_interval",
    "gate_windows",
    "judge_gates",
    "judged_since",
]
