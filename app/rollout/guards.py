"""Guards of an advance: each one measures, compares with its threshold, and says why.

Guards fail **closed**: a guard whose data is missing or whose source did not answer
fails, with the reason in `detail`. The data guards (error rate, exposure) read the
always-valid evidence since the step began (`app.evidence.gates`): they fail *on data*
(`GuardResult.on_data`) only when an e-value proves a limit broken, the one failure a
plan acts on; a limit broken by the estimate alone, not yet proven, makes an advance
wait. Everything here is pure: `GuardInputs` carries the numbers seen at decision time
(gathered by `app.rollout.evidence`), and the same inputs always give the same report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.analysis.failures import FlagErrors
from app.evidence.comparison import points
from app.evidence.gates import FlagGates, GateSettings, Judgement
from app.evidence.sequential import Arm
from app.evidence.windows import WindowPlan
from app.guardrails import Guardrail
from app.recorded import Unrecognised, recognised

__all__ = [
    "ADVANCE_GUARDS",
    "DependencyStatus",
    "GateArms",
    "GuardInputs",
    "GuardName",
    "GuardPolicy",
    "GuardResult",
    "GuardrailJudgement",
    "VariantCounts",
    "evaluate_guards",
]


class GuardName(StrEnum):
    """What a guard or a gate is called: the six advance guards in their order, then the
    canary verdict, which is no advance guard but a gate the autopilot may wait for."""

    DATA_FRESH = "data_fresh"
    ERROR_RATE = "error_rate"
    SOAK_TIME = "soak_time"
    DEPENDENCIES = "dependencies"
    EXPOSURE = "exposure"
    PROPAGATION = "propagation"
    CANARY = "canary"
    #: one of your own guardrails (`GuardResult.guardrail` names which)
    GUARDRAIL = "guardrail"


#: the guards `evaluate_guards` reports, in its order
ADVANCE_GUARDS = (
    GuardName.DATA_FRESH,
    GuardName.ERROR_RATE,
    GuardName.SOAK_TIME,
    GuardName.DEPENDENCIES,
    GuardName.EXPOSURE,
    GuardName.PROPAGATION,
)


@dataclass(frozen=True)
class GuardResult:
    """One guard's verdict with what it measured (`value`) against what (`threshold`).
    `flag` names the flag judged when one report covers several (a restore); a name read
    back from a record that no guard has any more stays `Unrecognised`."""

    name: GuardName | Unrecognised
    passed: bool
    value: float | str | None
    threshold: float | str | None
    detail: str
    window: str = ""
    of: int | None = None  # counted guards: out of how many (dependencies)
    flag: str = ""
    #: an always-valid e-value proves the limit broken: the one failure a plan acts on
    on_data: bool = False
    #: the guardrail judged, for `GuardName.GUARDRAIL`
    guardrail: str = ""
    #: a dry-run guardrail: judged and recorded, never blocks or acts (`passed` stays
    #: true; `on_data` says it would have acted)
    dry_run: bool = False

    @property
    def label(self) -> str:
        """'error_rate'; 'guardrail http_5xx'; 'checkout: error_rate' in a report on
        several flags."""
        named = f"{self.name} {self.guardrail}" if self.guardrail else str(self.name)
        return f"{self.flag}: {named}" if self.flag else named

    @property
    def would_act(self) -> bool:
        """A dry-run guardrail that would have failed on data."""
        return self.dry_run and self.on_data

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
            "window": self.window,
            "of": self.of,
            "on_data": self.on_data,
            "dry_run": self.dry_run,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> GuardResult:
        """A guard result as `as_json` wrote it (a stored guard report)."""
        label = str(document.get("name", "?"))
        flag, _, named = label.rpartition(": ")
        guardrail = ""
        kind, _, which = named.partition(" ")
        if kind == GuardName.GUARDRAIL and which:
            named, guardrail = kind, which
        name = recognised(GuardName, named)
        if not flag or isinstance(name, Unrecognised):
            flag, name = "", recognised(GuardName, label if not guardrail else named)
        return cls(
            name=name,
            passed=bool(document.get("passed")),
            value=document.get("value"),
            threshold=document.get("threshold"),
            detail=str(document.get("detail", "")),
            window=str(document.get("window", "")),
            of=document.get("of"),
            flag=flag,
            on_data=bool(document.get("on_data", False)),
            guardrail=guardrail,
            dry_run=bool(document.get("dry_run", False)),
        )


@dataclass(frozen=True)
class GuardPolicy:
    """The limits the guards judge against. The data guards share `false_action_budget`:
    a healthy flag is acted on at most that often per plan-day (docs/design.md §8)."""

    max_data_age_seconds: float = 120.0
    max_error_rate: float = 0.01
    min_soak: timedelta = timedelta(minutes=15)
    min_dependency_success: float = 0.99
    exposure_tolerance: float = 0.02  # absolute share, 0..1
    #: the window judged when no change of the flag is recorded (and dependencies' window)
    soak_window: timedelta = timedelta(minutes=15)
    #: a guard whose evidence the emitter cannot provide passes (else: fails closed)
    pass_without_evidence: bool = False
    #: treatment − control error rates allowed before the treatment is worse (0.01 = 1 pt)
    max_error_difference: float = 0.0
    #: false actions per plan-day the data gates may take between them on a healthy flag
    false_action_budget: float = 0.01
    slots: WindowPlan = field(default_factory=WindowPlan)
    #: your own guardrails (`ROLLOUT_GUARDRAILS_FILE`), and why they could not be read
    guardrails: tuple[Guardrail, ...] = ()
    guardrails_unreadable: str = ""

    def gate_settings(self, flag: str | None = None) -> GateSettings:
        """The data gates' settings (`app.evidence.gates`) of this policy; for `flag`,
        its guardrails share the budget with its own three gates."""
        return GateSettings(
            max_error_rate=self.max_error_rate,
            max_difference=self.max_error_difference,
            exposure_tolerance=self.exposure_tolerance,
            budget=self.false_action_budget,
            plan=self.slots,
            guardrails=0 if flag is None else len(self.guardrails_of(flag)),
        )

    def guardrails_of(self, flag: str) -> tuple[Guardrail, ...]:
        """The guardrails that judge `flag`."""
        return tuple(g for g in self.guardrails if g.judges(flag))


@dataclass(frozen=True)
class VariantCounts:
    """Evaluations and failed evaluations of one variant over the soak window;
    `split` counts only the evaluations decided by the percentage (reasons split and
    default), the ones whose shares the exposure guard compares."""

    evaluations: float
    errors: float
    split: float


@dataclass(frozen=True)
class DependencyStatus:
    flag: str
    percentage: float
    success_ratio: float | None  # None: no evaluations seen


@dataclass(frozen=True, kw_only=True)
class GuardInputs:
    """What the guards look at, as seen at decision time. `None` means unmeasured.
    Built by keyword only: twelve fields, several of the same type."""

    now: datetime
    configured_percentage: float  # the step the flag is at now
    treatment: str  # the rollout variant
    baseline: str  # the default variant
    source: str  # which metrics source answered, or "" when none did
    newest_sample: datetime | None
    variants: Mapping[str, VariantCounts] | None
    at_step_since: datetime | None
    dependencies: Sequence[DependencyStatus] = ()
    instance_versions: Mapping[str, str] | None = None  # instance -> config version
    current_config_version: str = ""
    notices: Sequence[str] = field(default=())  # the sources that could not answer
    #: evidence the answering source's emitter cannot provide (`queries.names.Evidence`)
    unavailable: frozenset[str] = frozenset()
    #: the flag's failed evaluations over the window (`app.analysis.failures`)
    errors: FlagErrors | None = None
    #: the data gates judged since the step began; None: nothing to judge yet
    gates: FlagGates | None = None
    #: the window judged in words ("since the step began 42 min ago")
    window: str = ""
    #: the flag's guardrails judged over the same window (`GuardrailJudgement`)
    guardrails: tuple[GuardrailJudgement, ...] = ()
    #: the treatment's and the control's (bad, total) per slot the gates judged, by gate
    #: ('treatment vs control', then each guardrail's name), with the slot ends and where
    #: the step's counts begin: what Flag detail draws over time
    arms: tuple[GateArms, ...] = ()
    judged_from: float = 0.0


@dataclass(frozen=True)
class GateArms:
    """One gate's treatment and control per slot: (bad, total) each, over `ends`."""

    gate: str
    ends: Any
    treatment: tuple[Any, Any]
    control: tuple[Any, Any]
    limit: float
    relative: bool = False


@dataclass(frozen=True)
class GuardrailJudgement:
    """One guardrail of one flag: its judgement since the step began, or why there is
    none (`missing`: the query failed, or returned nothing for this flag; empty while
    the step's first whole slot has not ended)."""

    guardrail: Guardrail
    judged: Judgement | None = None
    missing: str = ""


def evaluate_guards(inputs: GuardInputs, policy: GuardPolicy) -> list[GuardResult]:
    """The six guards of docs/design.md §5, in order: fresh data, error rate, soak time,
    dependencies, exposure, propagation; then one per guardrail of the flag (and one
    failing when the guardrails file cannot be read)."""
    return [*_advance_guards(inputs, policy), *_guardrails(inputs, policy)]


def _advance_guards(inputs: GuardInputs, policy: GuardPolicy) -> list[GuardResult]:
    return [
        _data_fresh(inputs, policy),
        _error_rate(inputs, policy),
        _soak_time(inputs, policy),
        _dependencies(inputs, policy),
        _unavailable(
            GuardName.EXPOSURE,
            inputs,
            policy,
            EXPOSURE_EVIDENCE,
            inputs.configured_percentage / 100,
        )
        or _exposure(inputs, policy),
        _unavailable(
            GuardName.PROPAGATION,
            inputs,
            policy,
            PROPAGATION_EVIDENCE,
            inputs.current_config_version,
        )
        or _propagation(inputs),
    ]


#: evidence each guard needs that an emitter may lack, and how a page names it
EXPOSURE_EVIDENCE = {
    "split_reason": "no reason label to tell split decisions apart",
    "variant": "no variant label, only on/off",
}
PROPAGATION_EVIDENCE = {"config_version": "no config-version metric"}
#: the treatment-against-control error test where failed evaluations carry no variant
NO_VARIANT_ERRORS = "not available from this emitter (its failed evaluations carry no variant)"


def _unavailable(
    name: GuardName,
    inputs: GuardInputs,
    policy: GuardPolicy,
    needs: Mapping[str, str],
    threshold: float | str,
) -> GuardResult | None:
    """The guard's result when the emitter cannot provide what it needs: passed or
    failed by `policy.pass_without_evidence`, saying so; None when it can."""
    lacking = [why for evidence, why in needs.items() if evidence in inputs.unavailable]
    if not lacking:
        return None
    verdict = "passes" if policy.pass_without_evidence else "fails closed"
    return GuardResult(
        name,
        policy.pass_without_evidence,
        None,
        threshold,
        f"not available from this emitter ({'; '.join(lacking)}): {verdict} by policy",
    )


def _data_fresh(inputs: GuardInputs, policy: GuardPolicy) -> GuardResult:
    name, limit = GuardName.DATA_FRESH, policy.max_data_age_seconds
    if not inputs.source or inputs.newest_sample is None:
        why = "; ".join(inputs.notices) or "no metrics source answered"
        return GuardResult(name, False, None, limit, f"no data: {why}")
    age = max(0.0, (inputs.now - inputs.newest_sample).total_seconds())
    verdict = "fresh" if age <= limit else "stale"
    return GuardResult(
        name,
        age <= limit,
        round(age, 1),
        limit,
        f"{inputs.source} data is {age:.0f} s old: {verdict}",
    )


def _error_rate(inputs: GuardInputs, policy: GuardPolicy) -> GuardResult:
    """The flag's error rate since the step began against the limit, and, where failed
    evaluations carry a variant, the treatment's against the limit and against the
    control's (`app.evidence.gates`). Failed *on data* when an always-valid e-value
    proves a limit broken; failed without proof (an advance waits) when the estimate is
    above the limit but not yet proven."""
    name, limit = GuardName.ERROR_RATE, policy.max_error_rate
    gates = inputs.gates
    if gates is None or gates.error_rate.estimate is None:
        return GuardResult(
            name, False, None, limit, f"no evaluations {inputs.window or 'in the window'}"
        )
    judged, window = gates.error_rate, gates.window
    rate = float(judged.estimate or 0.0)
    counted = f"{100 * rate:.2f} % of {judged.counts.total:.0f} evaluations failed"
    compared = _comparison_words(inputs, gates)
    for proof in (gates.error_rate, gates.treatment_rate):
        if proof is not None and proof.fired:
            # the value is the rate of the window that proved it (since the step began,
            # since a restart, or the last minute), named with it
            evidence = proof.evidence
            seen = float(evidence.estimate or 0.0)
            whose = "" if proof is gates.error_rate else f" of {inputs.treatment}"
            where = "" if evidence.words == window else f" {evidence.words}"
            since = "" if evidence.words == window else f"; {counted} {window}"
            return GuardResult(
                name,
                False,
                seen,
                limit,
                f"{100 * seen:.2f} % of {evidence.counts.total:.0f} evaluations{whose} failed"
                f"{where}: proven above {100 * limit:g} % ({_proof_words(proof)})"
                + since
                + compared,
                window,
                on_data=True,
            )
    if gates.difference is not None and gates.difference.fired:
        return GuardResult(
            name,
            False,
            rate,
            limit,
            f"{counted}; {inputs.treatment} proven to fail more often than "
            f"{inputs.baseline} ({_proof_words(gates.difference)})" + compared,
            window,
            on_data=True,
        )
    if rate > limit:
        return GuardResult(
            name,
            False,
            rate,
            limit,
            f"{counted}: above {100 * limit:g} %, not yet proven" + compared,
            window,
        )
    return GuardResult(name, True, rate, limit, counted + compared, window)


def _comparison_words(inputs: GuardInputs, gates: FlagGates) -> str:
    """'; on − off +0.10 pt (always-valid interval −0.52 pt…+0.71 pt)', or why there is
    none: the interval holds at every look at once, at the gate's share of the budget."""
    versus = f"{inputs.treatment} − {inputs.baseline}"
    if gates.difference is None:
        return f"; {versus}: {NO_VARIANT_ERRORS}"
    judged = gates.difference
    if judged.estimate is None:
        return f"; {versus}: no evaluations of one of them yet"
    words = f"; {versus} {points(judged.estimate)}"
    if judged.interval is not None:
        low, high = judged.interval
        words += f" (always-valid interval {points(low)}…{points(high)})"
    return words


def _proof_words(judged: Judgement) -> str:
    """'e-value 1.2e+05 ≥ 4.1e+03': the evidence against the limit and the threshold
    that proves it at the plan's false-action budget."""
    evidence = judged.evidence
    return (
        f"e-value {math.exp(min(evidence.log_evalue, 700)):.3g} ≥ "
        f"{math.exp(evidence.threshold):.3g}"
    )


def _soak_time(inputs: GuardInputs, policy: GuardPolicy) -> GuardResult:
    name, minimum = GuardName.SOAK_TIME, policy.min_soak.total_seconds()
    if inputs.at_step_since is None:
        return GuardResult(
            name,
            True,
            None,
            minimum,
            "no change recorded: at this step since before the history began",
        )
    soaked = (inputs.now - inputs.at_step_since).total_seconds()
    return GuardResult(
        name,
        soaked >= minimum,
        round(soaked),
        minimum,
        f"at {inputs.configured_percentage:g} % for {soaked / 60:.1f} min "
        f"(minimum {minimum / 60:g} min)",
    )


def _dependencies(inputs: GuardInputs, policy: GuardPolicy) -> GuardResult:
    name = GuardName.DEPENDENCIES
    unmet = []
    for dep in inputs.dependencies:
        if dep.percentage < 100:
            unmet.append(f"{dep.flag} at {dep.percentage:g} %")
        elif dep.success_ratio is None:
            unmet.append(f"{dep.flag} has no evaluations to judge its stability")
        elif dep.success_ratio < policy.min_dependency_success:
            unmet.append(f"{dep.flag} success {100 * dep.success_ratio:.2f} %")
    if not inputs.dependencies:
        return GuardResult(name, True, 0, policy.min_dependency_success, "no dependencies", of=0)
    detail = "; ".join(unmet) or f"all {len(inputs.dependencies)} at 100 % and stable"
    return GuardResult(
        name,
        not unmet,
        len(inputs.dependencies) - len(unmet),
        policy.min_dependency_success,
        detail,
        of=len(inputs.dependencies),
    )


def _exposure(inputs: GuardInputs, policy: GuardPolicy) -> GuardResult:
    """The treatment's share of the split-decided evaluations since the step began
    against the configured share: failed on data when a sample ratio mismatch is proven
    (`Hypothesis.SHARE_WITHIN`), failed without proof (an advance waits) when the
    share is off by more than the tolerance but not yet proven."""
    name, expected = GuardName.EXPOSURE, inputs.configured_percentage / 100
    gates = inputs.gates
    if gates is None or gates.exposure.estimate is None:
        window = inputs.window or "in the window"
        return GuardResult(name, False, None, expected, f"no split evaluations {window}")
    judged, window = gates.exposure, gates.window
    observed = float(judged.estimate or 0.0)
    detail = (
        f"observed {100 * observed:.2f} % on {inputs.treatment} vs configured "
        f"{100 * expected:g} % ({judged.counts.total:.0f} split evaluations)"
    )
    if judged.fired:
        return GuardResult(
            name,
            False,
            observed,
            expected,
            f"{detail}: sample ratio mismatch ({_proof_words(judged)})",
            window,
            on_data=True,
        )
    if not judged.within:
        return GuardResult(
            name,
            False,
            observed,
            expected,
            f"{detail}: off by more than {100 * policy.exposure_tolerance:g} points, not yet "
            "proven a mismatch",
            window,
        )
    return GuardResult(name, True, observed, expected, detail, window)


def _guardrails(inputs: GuardInputs, policy: GuardPolicy) -> list[GuardResult]:
    """Each guardrail of the flag, then the guardrails file's trouble: fails closed for
    advances, never on data (a rollback needs proof)."""
    results = [_guardrail(inputs, judged) for judged in inputs.guardrails]
    if policy.guardrails_unreadable:
        results.append(
            GuardResult(
                GuardName.GUARDRAIL,
                False,
                None,
                None,
                f"{policy.guardrails_unreadable}: no guardrail is judged, advances wait",
                inputs.window,
                guardrail="file",
            )
        )
    return results


def _guardrail(inputs: GuardInputs, judgement: GuardrailJudgement) -> GuardResult:
    """Treatment against control on one of your metrics. A dry run never blocks: it
    passes, and says what it would have done."""
    rail = judgement.guardrail
    judged = judgement.judged

    def result(
        passed: bool, value: float | None, detail: str, on_data: bool = False
    ) -> GuardResult:
        if not rail.acts:
            verdict = "passes" if passed else "would fail"
            passed, detail = True, f"dry run, {verdict}: {detail}"
        return GuardResult(
            GuardName.GUARDRAIL,
            passed,
            value,
            rail.limit,
            detail,
            inputs.window,
            on_data=on_data,
            guardrail=rail.name,
            dry_run=not rail.acts,
        )

    if judged is None or judged.estimate is None:
        why = judgement.missing or f"no {rail.name} counts of both variants {inputs.window}"
        return result(False, None, f"{why}: fails closed for advances, never rolls back")
    versus = f"{inputs.treatment} {_ratio(judged.counts)} vs {inputs.baseline} " + _ratio(
        judged.control
    )
    detail = f"{rail.name} {versus}, {_difference_words(judged)}; limit {rail.limit_words}"
    if judged.fired:
        proof = f"{judged.evidence.words} ({_proof_words(judged)})"
        return result(False, judged.estimate, f"{detail}: proven worse {proof}", on_data=True)
    if not judged.within:
        return result(False, judged.estimate, f"{detail}: over the limit, not yet proven")
    return result(True, judged.estimate, detail)


def _ratio(counts: Arm | None) -> str:
    if counts is None or counts.rate is None:
        return "–"
    return f"{100 * counts.rate:.2f} % of {counts.total:.0f}"


def _difference_words(judged: Judgement) -> str:
    words = f"{points(judged.estimate or 0.0)}"
    if judged.interval is not None:
        low, high = judged.interval
        words += f" (always-valid interval {points(low)}…{points(high)})"
    return words


def _propagation(inputs: GuardInputs) -> GuardResult:
    name, wanted = GuardName.PROPAGATION, inputs.current_config_version
    if inputs.instance_versions is None:
        return GuardResult(name, False, None, wanted, "no instance reports its config version")
    if not inputs.instance_versions:
        return GuardResult(name, False, 0, wanted, "no instance reports its config version")
    behind = sorted(i for i, v in inputs.instance_versions.items() if v != wanted)
    total = len(inputs.instance_versions)
    detail = f"{total - len(behind)} of {total} instances on {wanted}"
    if behind:
        detail += f"; behind: {', '.join(behind[:5])}" + (" …" if len(behind) > 5 else "")
    return GuardResult(name, not behind, f"{total - len(behind)}/{total}", wanted, detail)
