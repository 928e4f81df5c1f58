"""The data gates of a step, judged on the counts since it began (docs/design.md §8).

Three gates share a plan's false-action budget (`GateSettings.thresholds`):
- **error rate**: the flag's failed evaluations, read where its emitter counts them
  (`app.analysis.failures`), at most the limit; and, where failed evaluations carry a
  variant, the treatment's at most the limit too: two e-processes sharing the gate's
  share of the budget (each threshold raised by ln 2);
- **treatment vs control**: the treatment's error rate at most the control's plus an
  allowance (`Hypothesis.DIFFERENCE_AT_MOST`), with its always-valid interval; only where
  failed evaluations carry a variant;
- **exposure**: the treatment's share of the evaluations the split decided (reasons
  split and default, any case) within tolerance of the configured share
  (`Hypothesis.SHARE_WITHIN`): a sample ratio mismatch.

Each e-process is judged over the windows of `window_starts` (since the step began,
since each restart, the last minute); it **fired** when a window's e-value reached that
window's threshold: the data proves the gate failed. The estimate a gate shows is the one
since the step began. Pure numerics on arrays with a leading axis of rows (one flag, or
many simulated days at once): `judge_gates` answers one `FlagGates` per row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from app.analysis.failures import FlagErrors, failures_carry_variants
from app.evidence.sequential import (
    Arm,
    Hypothesis,
    Thresholds,
    WindowKind,
    difference_intervals,
    log_evalue,
    thresholds,
)
from app.evidence.windows import WindowPlan, WindowStarts, sum_windows, window_starts, window_words
from queries.names import ErrorsIn

__all__ = [
    "GATES",
    "DifferencePath",
    "Evidence",
    "FlagGates",
    "FlagSlots",
    "GateSettings",
    "GateSlots",
    "Judgement",
    "VariantSlots",
    "difference_path",
    "fired_rows",
    "judge_flag",
    "judge_gates",
    "judge_guardrail",
]

Array = npt.NDArray[np.float64]

#: the gates sharing a plan's budget: error rate, treatment vs control, exposure
GATES = 3


@dataclass(frozen=True)
class VariantSlots:
    """One variant's evaluations per slot, those with reason `error` (any case), and
    those the split decided (reasons split and default, any case)."""

    evaluations: Array
    errors: Array
    split: Array


@dataclass(frozen=True)
class GateSlots:
    """What the gates compare, per slot: arrays of shape (rows, n) over the slot ends
    `ends` (n,), sorted. `treatment` and `control` are (failed, evaluated) of the rollout
    and default variants, None where failed evaluations carry no variant; `split` is
    (the treatment's split-decided, all split-decided evaluations)."""

    ends: Array
    failed: Array
    evaluated: Array
    treatment: tuple[Array, Array] | None
    control: tuple[Array, Array] | None
    split: tuple[Array, Array]


@dataclass(frozen=True)
class FlagSlots:
    """One flag's counts per slot as a source answered them: per variant, and the error
    counter's failures (zeros without a counter), over the slot ends `ends`."""

    ends: Array
    variants: Mapping[str, VariantSlots]
    counter: Array

    def evaluations(self) -> Array:
        """All the flag's evaluations per slot (failed ones included, wherever counted)."""
        total = np.zeros_like(self.ends)
        for variant in self.variants.values():
            total = total + variant.evaluations
        return total

    def failures(self, errors_in: ErrorsIn) -> Array:
        """The flag's failed evaluations per slot, each counted once (`flag_errors`):
        the reason-`error` evaluations for REASON, the counter for COUNTER and BOTH."""
        if errors_in is not ErrorsIn.REASON:
            return self.counter
        failed = np.zeros_like(self.ends)
        for variant in self.variants.values():
            failed = failed + variant.errors
        return failed

    def errors_since(self, start: float, errors_in: ErrorsIn) -> FlagErrors:
        """The flag's failures over the slots ending after `start` (`FlagErrors`)."""
        after = self.ends > start
        return FlagErrors(
            float(self.failures(errors_in)[after].sum()),
            float(self.evaluations()[after].sum()),
            errors_in,
        )

    def gate_slots(self, errors_in: ErrorsIn, treatment: str, control: str) -> GateSlots:
        """The gates' arms of this flag: `treatment` is its rollout variant, `control`
        its default one."""
        nothing = np.zeros_like(self.ends)
        empty = VariantSlots(nothing, nothing, nothing)
        treated, base = self.variants.get(treatment, empty), self.variants.get(control, empty)
        per_variant = failures_carry_variants(errors_in)
        return GateSlots(
            ends=self.ends,
            failed=self.failures(errors_in)[None, :],
            evaluated=self.evaluations()[None, :],
            treatment=(treated.errors[None, :], treated.evaluations[None, :])
            if per_variant
            else None,
            control=(base.errors[None, :], base.evaluations[None, :]) if per_variant else None,
            split=(treated.split[None, :], (treated.split + base.split)[None, :]),
        )


@dataclass(frozen=True)
class GateSettings:
    """The limits the gates judge against and the budget they share: at most
    `budget` false actions per plan-day between them (`GATES`)."""

    max_error_rate: float = 0.01
    max_difference: float = 0.0  # treatment − control, in rate (0.01 = 1 point)
    exposure_tolerance: float = 0.02  # absolute share
    budget: float = 0.01
    plan: WindowPlan = field(default_factory=WindowPlan)
    #: guardrails judging the flag besides its own three gates: they share the budget
    guardrails: int = 0

    def thresholds(self) -> Thresholds:
        """Each gate's log thresholds (ValueError for a budget outside 0 … 1)."""
        return thresholds(
            self.budget,
            GATES + self.guardrails,
            self.plan.restarts_per_day(),
            self.plan.recent_windows_per_day(),
        )


@dataclass(frozen=True)
class Evidence:
    """The window of one e-process nearest to (or furthest past) its threshold."""

    words: str  # "since 14:10 UTC", "last minute", "since the step began 42 min ago"
    start: float
    kind: WindowKind
    log_evalue: float
    threshold: float
    estimate: float | None  # the rate, difference or share in that window
    counts: Arm
    control: Arm | None = None

    @property
    def fired(self) -> bool:
        return self.log_evalue >= self.threshold

    @property
    def strength(self) -> float:
        """How far past (> 0) or short of (< 0) its threshold, in nats."""
        return self.log_evalue - self.threshold


@dataclass(frozen=True)
class Judgement:
    """One e-process at one look: its estimate since the step began (`counts`, and
    `control` for a difference) against `limit`, whether that estimate is within it, and
    the strongest evidence against the limit; a difference carries its always-valid
    interval over the same counts at `alpha`, the budget share of one such window."""

    limit: float
    estimate: float | None
    within: bool
    counts: Arm
    evidence: Evidence
    control: Arm | None = None
    interval: tuple[float, float] | None = None
    alpha: float | None = None

    @property
    def fired(self) -> bool:
        """The data proves the limit broken (in the strongest window)."""
        return self.evidence.fired


@dataclass(frozen=True)
class FlagGates:
    """The gates of one flag at one look, over the window named `window` (since the step
    began). `treatment_rate` and `difference` are None where failed evaluations carry no
    variant."""

    window: str
    share: float  # the configured share of the treatment, 0..1
    error_rate: Judgement
    treatment_rate: Judgement | None
    difference: Judgement | None
    exposure: Judgement

    @property
    def errors_fired(self) -> bool:
        """The error-rate gate or treatment vs control failed on data."""
        judged = (self.error_rate, self.treatment_rate, self.difference)
        return any(j is not None and j.fired for j in judged)


def judge_flag(
    slots: GateSlots,
    step_began: float,
    now: float,
    share: float,
    settings: GateSettings,
    since: str,
) -> FlagGates | None:
    """`judge_gates` of one flag (one row)."""
    return judge_gates(slots, step_began, now, share, settings, since)[0]


def judge_gates(
    slots: GateSlots,
    step_began: float,
    now: float,
    share: float,
    settings: GateSettings,
    since: str,
) -> list[FlagGates | None]:
    """The three gates of every row of `slots` at `now`, for a step that began at
    `step_began` with the treatment at `share` (0..1); `since` names the window since the
    step began. None per row before the step's first whole slot has ended."""
    rows = slots.failed.shape[0]
    cut = window_starts(step_began, now, settings.plan)
    if cut is None:
        return [None] * rows
    limits = settings.thresholds()
    words = [window_words(s, k, cut, since) for s, k in zip(cut.starts, cut.kinds, strict=True)]
    rate, treated, base, difference, exposure = _processes(slots, cut, share, settings)
    alpha = math.exp(-limits.step)
    intervals = None
    if difference is not None and base is not None:
        intervals = difference_intervals(
            (difference.bad[:, 0], difference.total[:, 0]), (base[0][:, 0], base[1][:, 0]), alpha
        )
    judged: list[FlagGates | None] = []
    limit = settings.max_error_rate
    for row in range(rows):
        context = _Row(row, cut, words)
        compared = None
        if difference is not None and base is not None and intervals is not None:
            compared = context.difference(
                difference, base, settings.max_difference, intervals, alpha
            )
        judged.append(
            FlagGates(
                window=since,
                share=share,
                error_rate=context.rate(rate, limit),
                treatment_rate=None if treated is None else context.rate(treated, limit),
                difference=compared,
                exposure=context.share(exposure, share, settings.exposure_tolerance),
            )
        )
    return judged


def judge_guardrail(
    ends: Array,
    treatment: tuple[Array, Array],
    control: tuple[Array, Array],
    step_began: float,
    now: float,
    settings: GateSettings,
    since: str,
    *,
    limit: float,
    relative: bool = False,
) -> Judgement | None:
    """A guardrail of one flag: the treatment's (bad, total) per slot over `ends` against
    the control's, at most `limit` worse (points; or relative: treatment ≤ (1 + limit) ×
    control), judged over the windows of the gates at the gates' thresholds, with the
    always-valid interval of the difference. None before the step's first whole slot."""
    found = _guardrail_process(ends, treatment, control, step_began, now, settings, limit, relative)
    if found is None:
        return None
    cut, process, (c_bad, c_total) = found
    t_bad, t_total = process.bad, process.total
    limits = settings.thresholds()
    alpha = math.exp(-limits.step)
    intervals = difference_intervals(
        (t_bad[:, 0], t_total[:, 0]), (c_bad[:, 0], c_total[:, 0]), alpha
    )
    words = [window_words(s, k, cut, since) for s, k in zip(cut.starts, cut.kinds, strict=True)]
    judged = _Row(0, cut, words).difference(process, (c_bad, c_total), limit, intervals, alpha)
    if relative:
        treated, base = judged.counts.rate, (judged.control or Arm(0.0, 0.0)).rate
        within = treated is None or base is None or treated <= (1 + limit) * base
        judged = replace(judged, within=within)
    return judged


def _guardrail_process(
    ends: Array,
    treatment: tuple[Array, Array],
    control: tuple[Array, Array],
    step_began: float,
    now: float,
    settings: GateSettings,
    limit: float,
    relative: bool,
) -> tuple[WindowStarts, _Process, tuple[Array, Array]] | None:
    """The windows of one look, the guardrail's e-process over them, and the control's
    (bad, total) per window; None before the step's first whole slot has ended."""
    cut = window_starts(step_began, now, settings.plan)
    if cut is None:
        return None
    limits = settings.thresholds()
    steps = np.array([limits.of(kind) for kind in cut.kinds])

    def summed(counts: Array) -> Array:
        return sum_windows(ends, counts[None, :], cut.starts, cut.end)

    t_total, c_total = summed(treatment[1]), summed(control[1])
    t_bad = np.minimum(summed(treatment[0]), t_total)
    c_bad = np.minimum(summed(control[0]), c_total)
    hypothesis = Hypothesis.RATIO_AT_MOST if relative else Hypothesis.DIFFERENCE_AT_MOST
    evalues = log_evalue(hypothesis, (t_bad, t_total), limit, (c_bad, c_total))
    return cut, _Process(evalues, steps, t_bad, t_total), (c_bad, c_total)


@dataclass(frozen=True)
class DifferencePath:
    """Treatment − control since the step began, at each look drawn (`at`, epoch
    seconds): the estimate and its always-valid interval at the gate's level, the limit,
    and the first look at which the gate fired (None: never)."""

    at: Array
    estimate: Array  # NaN where an arm has no events yet
    low: Array
    high: Array
    limit: float
    relative: bool
    fired_at: float | None


def difference_path(
    ends: Array,
    treatment: tuple[Array, Array],
    control: tuple[Array, Array],
    step_began: float,
    now: float,
    settings: GateSettings,
    *,
    limit: float,
    relative: bool = False,
    looks: int = 120,
) -> DifferencePath | None:
    """The treatment-vs-control gate (or a guardrail) over the step, look by look: at
    most `looks` slot ends from the step's first whole slot to `now` (the last always
    among them), each judged as a tick would have judged it then (every window, the
    thresholds of `settings`). None before the step's first whole slot has ended."""
    cut = window_starts(step_began, now, settings.plan)
    if cut is None:
        return None
    inside = (ends > cut.first) & (ends <= cut.end)
    if not inside.any():
        return None
    chosen = np.unique(np.linspace(0, inside.sum() - 1, min(looks, int(inside.sum()))).round())
    picked = ends[inside][chosen.astype(int)]

    def since_start(counts: Array) -> Array:  # the running sum since the step, per look
        return np.asarray(np.cumsum(counts[inside])[chosen.astype(int)], dtype=np.float64)

    t_total, c_total = since_start(treatment[1]), since_start(control[1])
    t_bad = np.minimum(since_start(treatment[0]), t_total)
    c_bad = np.minimum(since_start(control[0]), c_total)
    alpha = math.exp(-settings.thresholds().step)
    low, high = difference_intervals((t_bad, t_total), (c_bad, c_total), alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(
            (t_total > 0) & (c_total > 0), t_bad / t_total - c_bad / c_total, np.nan
        )
    fired_at = None
    for t in picked:  # the e-process alone: a look's interval is not needed to fire
        found = _guardrail_process(
            ends, treatment, control, step_began, float(t), settings, limit, relative
        )
        if found is not None and (found[1].values >= found[1].thresholds).any():
            fired_at = float(t)
            break
    return DifferencePath(picked, estimate, low, high, limit, relative, fired_at)


def fired_rows(
    slots: GateSlots, step_began: float, now: float, share: float, settings: GateSettings
) -> npt.NDArray[np.bool_]:
    """Per row, whether any gate fired at `now`: what `judge_gates` says of each row in
    `FlagGates.errors_fired` or `exposure.fired`, without building its judgements (a
    simulation of many plan-days looks every tick)."""
    rows = slots.failed.shape[0]
    cut = window_starts(step_began, now, settings.plan)
    if cut is None:
        return np.zeros(rows, dtype=bool)
    processes = _processes(slots, cut, share, settings)
    fired = np.zeros(rows, dtype=bool)
    for process in (processes[0], processes[1], processes[3], processes[4]):
        if process is not None:
            fired |= (process.values >= process.thresholds).any(axis=1)
    return fired


def _processes(
    slots: GateSlots, cut: WindowStarts, share: float, settings: GateSettings
) -> tuple[_Process, _Process | None, tuple[Array, Array] | None, _Process | None, _Process]:
    """The e-processes of every row over the windows of `cut`: the error rate, the
    treatment's rate, the control's counts, treatment − control, and the exposure."""
    limits = settings.thresholds()
    steps = np.array([limits.of(kind) for kind in cut.kinds])

    def summed(counts: Array) -> Array:
        return sum_windows(slots.ends, counts, cut.starts, cut.end)

    evaluated = summed(slots.evaluated)
    failed = np.minimum(summed(slots.failed), evaluated)  # a counter scraped a moment ahead
    shared = math.log(2) if slots.treatment is not None else 0.0
    rate = _Process(
        log_evalue(Hypothesis.RATE_AT_MOST, (failed, evaluated), settings.max_error_rate),
        steps + shared,
        failed,
        evaluated,
    )
    treated = base = difference = None
    if slots.treatment is not None and slots.control is not None:
        t_total, c_total = summed(slots.treatment[1]), summed(slots.control[1])
        t_bad = np.minimum(summed(slots.treatment[0]), t_total)
        c_bad = np.minimum(summed(slots.control[0]), c_total)
        treated = _Process(
            log_evalue(Hypothesis.RATE_AT_MOST, (t_bad, t_total), settings.max_error_rate),
            steps + shared,
            t_bad,
            t_total,
        )
        base = (c_bad, c_total)
        difference = _Process(
            log_evalue(
                Hypothesis.DIFFERENCE_AT_MOST,
                (t_bad, t_total),
                settings.max_difference,
                (c_bad, c_total),
            ),
            steps,
            t_bad,
            t_total,
        )
    split_total = summed(slots.split[1])
    split_treated = np.minimum(summed(slots.split[0]), split_total)
    exposure = _Process(
        log_evalue(
            Hypothesis.SHARE_WITHIN,
            (split_treated, split_total),
            settings.exposure_tolerance,
            share=share,
        ),
        steps,
        split_treated,
        split_total,
    )
    return rate, treated, base, difference, exposure


@dataclass(frozen=True)
class _Process:
    """One e-process over every row and window: log e-values, thresholds (per window),
    and the counts behind them (bad, total), each of shape (rows, windows)."""

    values: Array
    thresholds: Array
    bad: Array
    total: Array

    def strongest(self, row: int) -> int:
        return int(np.argmax(self.values[row] - self.thresholds))


@dataclass(frozen=True)
class _Row:
    """Reads one row's judgements out of the processes."""

    row: int
    cut: WindowStarts
    words: Sequence[str]

    def evidence(
        self, process: _Process, estimate: float | None, window: int, control: Arm | None = None
    ) -> Evidence:
        return Evidence(
            words=self.words[window],
            start=self.cut.starts[window],
            kind=self.cut.kinds[window],
            log_evalue=float(process.values[self.row, window]),
            threshold=float(process.thresholds[window]),
            estimate=estimate,
            counts=self._arm(process.bad, process.total, window),
            control=control,
        )

    def _arm(self, bad: Array, total: Array, window: int) -> Arm:
        return Arm(float(bad[self.row, window]), float(total[self.row, window]))

    def rate(self, process: _Process, limit: float) -> Judgement:
        best = process.strongest(self.row)
        since = self._arm(process.bad, process.total, 0)
        return Judgement(
            limit=limit,
            estimate=since.rate,
            within=since.rate is None or since.rate <= limit,
            counts=since,
            evidence=self.evidence(process, self._arm(process.bad, process.total, best).rate, best),
        )

    def difference(
        self,
        process: _Process,
        base: tuple[Array, Array],
        limit: float,
        intervals: tuple[Array, Array],
        alpha: float,
    ) -> Judgement:
        best = process.strongest(self.row)
        treated, control = (
            self._arm(process.bad, process.total, 0),
            self._arm(base[0], base[1], 0),
        )
        estimate = _difference(treated, control)
        strongest_control = self._arm(base[0], base[1], best)
        in_window = _difference(self._arm(process.bad, process.total, best), strongest_control)
        low, high = float(intervals[0][self.row]), float(intervals[1][self.row])
        return Judgement(
            limit=limit,
            estimate=estimate,
            within=estimate is None or estimate <= limit,
            counts=treated,
            control=control,
            evidence=self.evidence(process, in_window, best, strongest_control),
            interval=None if math.isnan(low) else (low, high),
            alpha=alpha,
        )

    def share(self, process: _Process, share: float, tolerance: float) -> Judgement:
        best = process.strongest(self.row)
        since = self._arm(process.bad, process.total, 0)
        return Judgement(
            limit=tolerance,
            estimate=since.rate,
            within=since.rate is None or abs(since.rate - share) <= tolerance,
            counts=since,
            evidence=self.evidence(process, self._arm(process.bad, process.total, best).rate, best),
        )


def _difference(treatment: Arm, control: Arm) -> float | None:
    if treatment.rate is None or control.rate is None:
        return None
    return treatment.rate - control.rate
