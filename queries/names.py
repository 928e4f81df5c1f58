"""Metric and label names (DESIGN §3), with presets for other emitters.

Every query reads names from a `MetricNames` value, never from literals, so a team whose
services emit other names changes settings, not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["PRESETS", "MetricNames", "MetricPreset"]


class MetricPreset(StrEnum):
    SEED = "seed"
    USAGE = "usage"
    OPENFEATURE = "openfeature"


@dataclass(frozen=True)
class MetricNames:
    """Names of the metrics and labels the dashboard queries.

    `errors` may be empty: the emitter then has no error counter and error rates are 0.
    `duration` may be empty: latency panels then show no data.
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


PRESETS: dict[MetricPreset, MetricNames] = {
    MetricPreset.SEED: MetricNames(),
    # production-deployment-guide.md: feature_flag_usage_total{flag_name, enabled}
    MetricPreset.USAGE: MetricNames(
        evaluations="feature_flag_usage_total",
        errors="",
        duration="",
        flag_label="flag_name",
        variant_label="enabled",
    ),
    # OpenFeature's OpenTelemetry hook metrics, as exported to Prometheus.
    MetricPreset.OPENFEATURE: MetricNames(
        evaluations="feature_flag_evaluation_success_total",
        errors="feature_flag_evaluation_error_total",
        duration="feature_flag_evaluation_duration_seconds",
        flag_label="feature_flag_key",
        variant_label="feature_flag_result_variant",
        reason_label="feature_flag_result_reason",
        environment_label="environment",
        error_type_label="exception",
    ),
}
