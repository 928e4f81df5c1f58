"""Metric and label names (docs/design.md §3), with presets for other emitters.

Every query reads names from a `MetricNames` value, never from literals, so a team whose
services emit other names changes settings, not code. Each preset holds the names
exactly as its emitter exports them (no relabeling needed); every field can be
overridden one by one (`ROLLOUT_METRIC_<FIELD>`, see `app.settings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import StrEnum

__all__ = [
    "FAILED_VARIANT",
    "PRESETS",
    "ErrorsIn",
    "Evidence",
    "MetricNames",
    "MetricPreset",
    "name_problem",
]

#: the variant failed evaluations are shown under when the emitter counts them apart
#: from the successful ones, with no variant (OpenFeature's `error_total`)
FAILED_VARIANT = "(error)"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricPreset(StrEnum):
    SEED = "seed"
    USAGE = "usage"
    OPENFEATURE = "openfeature"
    UNLEASH = "unleash"


class ErrorsIn(StrEnum):
    """Where an emitter counts a failed evaluation (docs/design.md §8)."""

    COUNTER = "counter"  # only in the error counter (OpenFeature's error_total)
    REASON = "reason"  # only as an evaluation with reason `error` (any case)
    BOTH = "both"  # in both (the seed's record_flag_evaluation, app/flags/evaluator.py)


class Evidence(StrEnum):
    """What a guard or panel needs from the emitter, which some emitters do not export."""

    ERRORS = "errors"  # an error counter
    LATENCY = "latency"  # a duration histogram
    CONFIG_VERSION = "config_version"  # a config-info gauge: propagation
    SPLIT_REASON = "split_reason"  # a reason label: exposure counts split decisions only
    VARIANT = "variant"  # a variant label (Unleash has only active true/false)
    ENVIRONMENT = "environment"  # an environment, on the series or via an info metric


@dataclass(frozen=True)
class MetricNames:
    """Names of the metrics and labels the dashboard queries.

    `errors` may be empty: the emitter then has no error counter and error rates are 0.
    `duration` may be empty: latency panels then show no data. `config_info` and
    `rollout_percentage` may be empty: the emitter has no such gauge.

    Where the environment is: `environment_label` on every series; or, with
    `environment_info` set (OpenTelemetry's `target_info`), that label on the info
    metric, joined to every series on `environment_join` (`group_left`); or, with
    `environment_label` empty, nowhere: single-environment mode, every series counts as
    the one environment the dashboard shows.

    `errors_counted_in_evaluations`: whether a failed evaluation also increments
    `evaluations` (the seed, with reason `error`), or only `errors` (OpenFeature: then
    evaluations are successes + errors). `errors_in`: where a failed evaluation is
    counted, so that each counts once (`failures_in`). `variants_are_on_off`: the
    "variant" label only says whether the flag was on (Unleash's `active`): there is no
    variant label.
    """

    evaluations: str = "feature_flag_evaluations_total"
    errors: str = "feature_flag_evaluation_errors_total"
    duration: str = "feature_flag_evaluation_duration_seconds"
    config_info: str = "feature_flag_config_info"
    rollout_percentage: str = "feature_flag_rollout_percentage"
    http_requests: str = "http_requests_total"
    http_duration: str = "http_request_duration_seconds"
    flag_label: str = "flag"
    variant_label: str = "variant"
    reason_label: str = "reason"
    environment_label: str = "environment"
    error_type_label: str = "error_type"
    track_label: str = "track"
    environment_info: str = ""
    environment_join: tuple[str, ...] = ("job", "instance")
    errors_counted_in_evaluations: bool = True
    errors_in: ErrorsIn = ErrorsIn.BOTH
    variants_are_on_off: bool = False

    @property
    def single_environment(self) -> bool:
        """No environment anywhere: every series is the one environment shown."""
        return not self.environment_label

    @property
    def environment_joined(self) -> bool:
        """The environment is a label of `environment_info`, joined to every series."""
        return bool(self.environment_label and self.environment_info)

    @property
    def failures_in(self) -> ErrorsIn:
        """Where a flag's failed evaluations are read: `errors_in`, except that without an
        error counter only evaluations with reason `error` can hold them."""
        return self.errors_in if self.errors else ErrorsIn.REASON

    @property
    def missing(self) -> frozenset[Evidence]:
        """What this emitter cannot provide: guards and panels needing it say so."""
        gaps = {
            Evidence.ERRORS: not self.errors,
            Evidence.LATENCY: not self.duration,
            Evidence.CONFIG_VERSION: not self.config_info,
            Evidence.SPLIT_REASON: not self.reason_label,
            Evidence.VARIANT: self.variants_are_on_off,
            Evidence.ENVIRONMENT: self.single_environment,
        }
        return frozenset(evidence for evidence, lacking in gaps.items() if lacking)

    def environment_lookup(self, environment: str) -> str:
        """Where the series of `environment` are looked for, in words for a page."""
        if self.single_environment:
            return "no environment label (single-environment mode: every series counts)"
        if self.environment_joined:
            return (
                f'{self.environment_info}{{{self.environment_label}="{environment}"}} joined '
                f"on ({', '.join(self.environment_join)}) to {self.evaluations}"
            )
        return f'{self.evaluations}{{{self.environment_label}="{environment}"}}'


#: fields holding a metric name; the rest of the str fields hold label names
METRIC_FIELDS = frozenset(
    {
        "evaluations",
        "errors",
        "duration",
        "config_info",
        "rollout_percentage",
        "http_requests",
        "http_duration",
        "environment_info",
    }
)
#: fields that may be empty: the emitter has no such metric or label
OPTIONAL_FIELDS = frozenset(
    {
        "errors",
        "duration",
        "config_info",
        "rollout_percentage",
        "environment_info",
        "environment_label",
        "reason_label",
    }
)


def name_problem(field_name: str, value: str) -> str | None:
    """Why `value` cannot be the `MetricNames` field `field_name`, or None when it can."""
    if not value:
        return None if field_name in OPTIONAL_FIELDS else "must not be empty"
    if field_name in METRIC_FIELDS:
        if not _METRIC_NAME.fullmatch(value):
            return "not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
    elif not _LABEL_NAME.fullmatch(value) or value.startswith("__"):
        return "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
    return None


#: every `MetricNames` field a setting can override, in declaration order
OVERRIDABLE = tuple(f.name for f in fields(MetricNames))


PRESETS: dict[MetricPreset, MetricNames] = {
    MetricPreset.SEED: MetricNames(),
    # production-deployment-guide.md: feature_flag_usage_total{flag_name, enabled}
    MetricPreset.USAGE: MetricNames(
        evaluations="feature_flag_usage_total",
        errors="",
        duration="",
        flag_label="flag_name",
        variant_label="enabled",
        errors_in=ErrorsIn.REASON,  # no error counter
    ),
    # OpenFeature's OpenTelemetry MetricsHook (JS @openfeature/open-telemetry-hooks 1.0),
    # as @opentelemetry/exporter-prometheus serves it: a failed evaluation counts only in
    # error_total; the environment is the resource attribute deployment.environment.name,
    # found only in target_info; no duration histogram, no config-info gauge.
    MetricPreset.OPENFEATURE: MetricNames(
        evaluations="feature_flag_evaluation_success_total",
        errors="feature_flag_evaluation_error_total",
        duration="",
        config_info="",
        rollout_percentage="",
        flag_label="feature_flag_key",
        variant_label="feature_flag_result_variant",
        reason_label="feature_flag_result_reason",
        environment_label="deployment_environment_name",
        error_type_label="exception",
        environment_info="target_info",
        errors_counted_in_evaluations=False,
        errors_in=ErrorsIn.COUNTER,  # failed evaluations carry no variant
    ),
    # Unleash's own /internal-backstage/prometheus: feature_toggle_usage_total{toggle,
    # active, appName}, from its clients' metrics: no variant, reason or environment
    # label, no errors, no duration.
    MetricPreset.UNLEASH: MetricNames(
        evaluations="feature_toggle_usage_total",
        errors="",
        duration="",
        config_info="",
        rollout_percentage="",
        flag_label="toggle",
        variant_label="active",
        reason_label="",
        environment_label="",
        errors_in=ErrorsIn.REASON,  # no error counter (and no reason label: no errors)
        variants_are_on_off=True,
    ),
}
