"""The evaluation metrics expose exactly what prometheus_client's own Counter and
Histogram would for the same evaluations: names, labels, buckets, values, types."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from app.flags.evaluator import EvaluationMetrics, EvaluationResult, Reason
from app.metrics_db.records import LATENCY_BUCKETS
from queries.names import MetricNames

RESULTS = [
    (EvaluationResult("alpha", "on", True, Reason.SPLIT), "production", 0.0004),
    (EvaluationResult("alpha", "on", True, Reason.SPLIT), "production", 0.0005),  # on a bound
    (EvaluationResult("alpha", "off", False, Reason.DEFAULT), "production", 0.002),
    (EvaluationResult("alpha", "off", False, Reason.DEFAULT), "staging", 7.0),  # past the last
    (EvaluationResult("beta", "", None, Reason.ERROR, "flag_not_found"), "staging", 0.0),
    (EvaluationResult('q"uote\\d', "v\n", None, Reason.TARGETING_MATCH), "production", 0.01),
]


def _reference(registry: CollectorRegistry, names: MetricNames) -> None:
    """prometheus_client's own metrics, fed the same evaluations."""
    counter = Counter(
        names.evaluations.removesuffix("_total"),
        "Feature flag evaluations",
        [names.flag_label, names.variant_label, names.reason_label, names.environment_label],
        registry=registry,
    )
    histogram = (
        Histogram(
            names.duration,
            "Feature flag evaluation latency",
            [names.flag_label, names.environment_label],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        if names.duration
        else None
    )
    for result, environment, seconds in RESULTS:
        counter.labels(result.flag_key, result.variant, result.reason.value, environment).inc()
        if histogram is not None:
            histogram.labels(result.flag_key, environment).observe(seconds)


def _exposition(registry: CollectorRegistry, family_prefixes: tuple[str, ...]) -> dict[str, str]:
    """Both text formats, only the given families, `_created` timestamps blanked."""
    formats = {"text": generate_latest(registry), "openmetrics": openmetrics_latest(registry)}
    shown = {}
    for name, body in formats.items():
        lines = [
            re.sub(r"(_created\{.*\}) \S+$", r"\1 T", line)
            for line in body.decode().splitlines()
            if any(prefix in line for prefix in family_prefixes)
        ]
        shown[name] = "\n".join(sorted(lines))
    return shown


@pytest.mark.parametrize(
    "names",
    [
        MetricNames(),
        MetricNames(evaluations="feature_flag_usage_total", duration="", flag_label="flag_name"),
    ],
)
def test_same_exposition_as_prometheus_client(names: MetricNames) -> None:
    ours = CollectorRegistry()
    metrics = EvaluationMetrics(ours, names)
    for result, environment, seconds in RESULTS:
        metrics.record(result, environment, seconds)
    theirs = CollectorRegistry()
    _reference(theirs, names)

    families = tuple(
        name for name in (names.evaluations.removesuffix("_total"), names.duration) if name
    )
    expected = _exposition(theirs, families)
    assert expected["text"].count("\n") > 10  # the reference really exposes samples
    assert _exposition(ours, families) == expected


def test_a_second_evaluation_metrics_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    EvaluationMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        EvaluationMetrics(registry)
