"""Canary verdicts: is the canary track measurably worse than the baseline (stable)?

Pure statistics, no I/O. Each metric is judged the way Kayenta's NetflixACAJudge does
with its Mann-Whitney classifier: a metric *fails* only when the difference is both
statistically significant (98 % confidence by default) and larger than a tolerance, so
neither a tiny-but-certain nor a large-but-noisy difference alone fails a canary.

- Error ratio: one-sided pooled two-proportion z-test (H1: canary ratio > baseline).
- Latency: one-sided Mann-Whitney U test (`scipy.stats.mannwhitneyu`,
  `alternative="greater"`) on per-interval p99 values, with a relative tolerance on the
  medians (Kayenta: "Mann-Whitney U test + effect size").
- Overall: Argo Rollouts' AnalysisRun style (`failureLimit` = 0,
  `inconclusiveLimit`): see `overall`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scipy.stats import mannwhitneyu, norm

__all__ = [
    "CanaryPolicy",
    "CanaryReport",
    "MetricVerdict",
    "Verdict",
    "judge_error_ratio",
    "judge_latency",
    "overall",
]


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    MARGINAL = "marginal"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class CanaryPolicy:
    """How strict the judge is.

    A canary value is *above tolerance* when it exceeds the baseline by more than the
    tolerance: for the error ratio by more than `error_ratio_tolerance` (relative) and
    more than `error_ratio_floor` (absolute, so a 0 % baseline does not make any single
    error intolerable); for latency when the canary median exceeds the baseline median
    by more than `latency_tolerance` (relative).

    `marginal_p_value` is the marginal band: a difference above tolerance but not
    significant is marginal only when its p-value is below it. At the default 0.5 every
    such difference is marginal (a one-sided p-value is below 0.5 whenever the canary
    looks worse); lower it (e.g. 0.2) to pass weak, noisy evidence.
    """

    alpha: float = 0.02  # 98 % confidence
    error_ratio_tolerance: float = 0.2
    error_ratio_floor: float = 0.001
    latency_tolerance: float = 0.1
    min_requests: int = 500  # per track, over the window
    min_intervals: int = 8  # per track, latency points over the window
    marginal_p_value: float = 0.5


@dataclass(frozen=True)
class MetricVerdict:
    """The verdict on one metric and the numbers behind it.

    `canary` / `baseline` are the compared values (error ratios 0..1, or median p99
    seconds); NaN when a track had no data. `statistic` is z (error ratio) or U
    (latency); `statistic` and `p_value` are None when the test was not run.
    """

    name: str
    verdict: Verdict
    canary: float
    baseline: float
    statistic: float | None
    p_value: float | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        """docs/design.md §6 fields (+ detail); non-finite numbers become null."""
        return {
            "name": self.name,
            "verdict": str(self.verdict),
            "canary": _finite_or_none(self.canary),
            "baseline": _finite_or_none(self.baseline),
            "statistic": _finite_or_none(self.statistic),
            "p_value": _finite_or_none(self.p_value),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CanaryReport:
    verdict: Verdict
    metrics: tuple[MetricVerdict, ...]

    def as_json(self) -> dict[str, Any]:
        """docs/design.md §6's canary document: `{"verdict", "metrics": [...]}`."""
        return {"verdict": str(self.verdict), "metrics": [m.as_json() for m in self.metrics]}


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _ratio(errors: float, requests: float) -> float:
    return errors / requests if requests > 0 else math.nan


def _combine(above: bool, p_value: float, policy: CanaryPolicy) -> Verdict:
    """Kayenta's rule: fail only when significant AND beyond tolerance."""
    significant = p_value < policy.alpha
    if significant and above:
        return Verdict.FAIL
    if significant or (above and p_value < policy.marginal_p_value):
        return Verdict.MARGINAL
    return Verdict.PASS


def judge_error_ratio(
    canary_requests: float,
    canary_errors: float,
    baseline_requests: float,
    baseline_errors: float,
    policy: CanaryPolicy = CanaryPolicy(),
    name: str = "error ratio",
) -> MetricVerdict:
    """One-sided pooled two-proportion z-test that the canary's error ratio exceeds the
    baseline's; inconclusive when either track has fewer than `policy.min_requests`."""
    canary = _ratio(canary_errors, canary_requests)
    baseline = _ratio(baseline_errors, baseline_requests)
    fewest = min(canary_requests, baseline_requests)
    if fewest < policy.min_requests:
        return MetricVerdict(
            name,
            Verdict.INCONCLUSIVE,
            canary,
            baseline,
            None,
            None,
            f"too few requests: canary {canary_requests:.0f}, baseline "
            f"{baseline_requests:.0f} (need {policy.min_requests} each)",
        )
    pooled = (canary_errors + baseline_errors) / (canary_requests + baseline_requests)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / canary_requests + 1 / baseline_requests))
    if spread > 0:
        z = (canary - baseline) / spread
        p_value = float(norm.sf(z))
    else:  # no errors at all (or nothing but errors): the ratios are equal
        z, p_value = 0.0, 1.0
    allowed = max(
        baseline * (1 + policy.error_ratio_tolerance), baseline + policy.error_ratio_floor
    )
    above = canary > allowed
    verdict = _combine(above, p_value, policy)
    detail = (
        f"canary {100 * canary:.2f} % vs baseline {100 * baseline:.2f} % "
        f"(tolerated up to {100 * allowed:.2f} %); z = {z:.2f}, p = {p_value:.3g}"
    )
    return MetricVerdict(name, verdict, canary, baseline, z, p_value, detail)


def judge_latency(
    canary_values: Sequence[float],
    baseline_values: Sequence[float],
    policy: CanaryPolicy = CanaryPolicy(),
    name: str = "p99 latency",
) -> MetricVerdict:
    """One-sided Mann-Whitney U test that per-interval canary values (e.g. p99 seconds)
    are greater than the baseline's, with a relative tolerance on the medians;
    inconclusive when either track has fewer than `policy.min_intervals` values."""
    canary_points = [v for v in canary_values if math.isfinite(v)]
    baseline_points = [v for v in baseline_values if math.isfinite(v)]
    canary = statistics.median(canary_points) if canary_points else math.nan
    baseline = statistics.median(baseline_points) if baseline_points else math.nan
    fewest = min(len(canary_points), len(baseline_points))
    if fewest < policy.min_intervals:
        return MetricVerdict(
            name,
            Verdict.INCONCLUSIVE,
            canary,
            baseline,
            None,
            None,
            f"too few intervals: canary {len(canary_points)}, baseline "
            f"{len(baseline_points)} (need {policy.min_intervals} each)",
        )
    result = mannwhitneyu(canary_points, baseline_points, alternative="greater")
    u = float(result.statistic)
    p_value = float(result.pvalue)
    if math.isnan(p_value):  # degenerate input: no evidence either way
        p_value = 1.0
    allowed = baseline * (1 + policy.latency_tolerance)
    above = canary > allowed
    verdict = _combine(above, p_value, policy)
    detail = (
        f"median canary {1000 * canary:.1f} ms vs baseline {1000 * baseline:.1f} ms "
        f"(tolerated up to {1000 * allowed:.1f} ms); U = {u:g}, p = {p_value:.3g}"
    )
    return MetricVerdict(name, verdict, canary, baseline, u, p_value, detail)


def overall(metrics: Sequence[MetricVerdict]) -> Verdict:
    """The canary's verdict, Argo Rollouts AnalysisRun style with failureLimit = 0:
    any metric fail → fail; else any marginal → marginal; else all inconclusive (or no
    metric at all) → inconclusive; else pass (an inconclusive metric beside passing ones
    does not block, like an inconclusiveLimit above zero)."""
    verdicts = {m.verdict for m in metrics}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.MARGINAL in verdicts:
        return Verdict.MARGINAL
    if not verdicts or verdicts == {Verdict.INCONCLUSIVE}:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS
