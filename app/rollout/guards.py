"""Guards of an advance: each one measures, compares with its threshold, and says why.

Guards fail **closed**: a guard whose data is missing or whose source did not answer
fails, with the reason in `detail`. Everything here is pure: `GuardInputs` carries the
numbers seen at decision time (gathered by `app.rollout.service`), and the same inputs
always give the same report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.analysis.failures import FlagErrors, reason_errors
from app.analysis.health import VariantComparison
from app.analysis.health import two_proportion_greater as _two_proportion_greater
from app.recorded import Unrecognised, recognised

__all__ = [
    "ADVANCE_GUARDS",
    "DependencyStatus",
    "GuardInputs",
    "GuardName",
    "GuardPolicy",
    "GuardResult",
    "VariantCounts",
    "evaluate_guards",
    "sample_ratio_mismatch",
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

    @property
    def label(self) -> str:
        """'error_rate'; 'checkout: error_rate' in a report on several flags."""
        return f"{self.flag}: {self.name}" if self.flag else str(self.name)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
            "window": self.window,
            "of": self.of,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> GuardResult:
        """A guard result as `as_json` wrote it (a stored guard report)."""
        label = str(document.get("name", "?"))
        flag, _, named = label.rpartition(": ")
        name = recognised(GuardName, named)
        if not flag or isinstance(name, Unrecognised):
            flag, name = "", recognised(GuardName, label)
        return cls(
            name=name,
            passed=bool(document.get("passed")),
            value=document.get("value"),
            threshold=document.get("threshold"),
            detail=str(document.get("detail", "")),
            window=str(document.get("window", "")),
            of=document.get("of"),
            flag=flag,
        )


@dataclass(frozen=True)
class GuardPolicy:
    max_data_age_seconds: float = 120.0
    max_error_rate: float = 0.01
    significance: float = 0.01  # p below this: the treatment is worse than the baseline
    min_soak: timedelta = timedelta(minutes=15)
    min_dependency_success: float = 0.99
    exposure_tolerance: float = 0.02  # absolute share, 0..1
    srm_p_value: float = 0.001
    soak_window: timedelta = timedelta(minutes=15)
    #: a guard whose evidence the emitter cannot provide passes (else: fails closed)
    pass_without_evidence: bool = False


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
    #: the flag's failed evaluations over the window (`app.analysis.failures`); None:
    #: no error counter answered, `variants`' reason-`error` evaluations are the failures
    errors: FlagErrors | None = None


def evaluate_guards(inputs: GuardInputs, policy: GuardPolicy) -> list[GuardResult]:
    """The six guards of docs/design.md §5, in order: fresh data, error rate, soak time,
    dependencies, exposure, propagation."""
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


def _window(policy: GuardPolicy) -> str:
    return f"{policy.soak_window.total_seconds() / 60:g} min"


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
    name, window = GuardName.ERROR_RATE, _window(policy)
    if not inputs.variants:
        return GuardResult(
            name, False, None, policy.max_error_rate, "no evaluations in the window", window
        )
    errors = inputs.errors or reason_errors(inputs.variants.values())
    total, ratio = errors.evaluations, errors.rate
    if ratio is None:
        return GuardResult(
            name, False, None, policy.max_error_rate, "no evaluations in the window", window
        )
    if ratio > policy.max_error_rate:
        return GuardResult(
            name,
            False,
            ratio,
            policy.max_error_rate,
            f"{100 * ratio:.2f} % of {total:.0f} evaluations failed",
            window,
        )
    treated = inputs.variants.get(inputs.treatment)
    base = inputs.variants.get(inputs.baseline)
    test = ""
    if not errors.per_variant:
        test = (
            f"; two-proportion z-test {inputs.treatment} > {inputs.baseline}: {NO_VARIANT_ERRORS}"
        )
    elif treated and base and treated.evaluations > 0 and base.evaluations > 0:
        z, p = _two_proportion_greater(
            treated.errors, treated.evaluations, base.errors, base.evaluations
        )
        test = (
            f"; two-proportion z-test {inputs.treatment} > {inputs.baseline}: z={z:.2f}, p={p:.4f}"
        )
        if p < policy.significance:
            words = VariantComparison(
                inputs.treatment,
                inputs.baseline,
                treated.errors / treated.evaluations,
                base.errors / base.evaluations,
                z,
                p,
                policy.significance,
            ).words
            return GuardResult(
                name,
                False,
                ratio,
                policy.max_error_rate,
                f"{words} ({inputs.treatment} fails significantly more often than "
                f"{inputs.baseline} although below the threshold){test}",
                window,
            )
    return GuardResult(
        name,
        True,
        ratio,
        policy.max_error_rate,
        f"{100 * ratio:.2f} % of {total:.0f} evaluations failed{test}",
        window,
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
    name, window = GuardName.EXPOSURE, _window(policy)
    expected = inputs.configured_percentage / 100
    counts = inputs.variants or {}
    treated = counts.get(inputs.treatment, VariantCounts(0, 0, 0)).split
    base = counts.get(inputs.baseline, VariantCounts(0, 0, 0)).split
    total = treated + base
    if total <= 0:
        return GuardResult(
            name, False, None, expected, "no split evaluations in the window", window
        )
    observed = treated / total
    off_by = abs(observed - expected)
    mismatch, srm = sample_ratio_mismatch(treated, base, expected, policy.srm_p_value)
    passed = off_by <= policy.exposure_tolerance and not mismatch
    detail = (
        f"observed {100 * observed:.2f} % on {inputs.treatment} vs configured "
        f"{100 * expected:g} % ({total:.0f} split evaluations; {srm})"
        + ("; sample ratio mismatch" if mismatch else "")
    )
    return GuardResult(name, passed, observed, expected, detail, window)


def sample_ratio_mismatch(
    treated: float, base: float, expected: float, p_value: float
) -> tuple[bool, str]:
    """Whether `treated` of `treated + base` split evaluations is too far from the
    configured share `expected` (0..1) to be chance (chi-square p below `p_value`), and
    the test's words."""
    total = treated + base
    if 0 < expected < 1:
        from scipy import stats  # only an advance measures exposure: rollbacks skip ~2 s

        chi2, p = stats.chisquare([treated, base], [total * expected, total * (1 - expected)])
        return float(p) < p_value, f"chi-square={float(chi2):.2f}, p={float(p):.4f}"
    # 0 % or 100 %: any evaluation on the other side is a mismatch
    return abs(treated / total - expected) > 0, "exact check at 0/100 %"


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
