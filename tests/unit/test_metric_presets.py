"""Metric presets and their one-by-one overrides: names, validation, query texts, notes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields, replace
from datetime import timedelta

import pandas as pd
import pytest

from app.analysis.emitter import emitter_notes, errors_note, single_environment_note
from app.rollout.evidence import unavailable_evidence, variant_counts
from app.settings import EvidencePolicy, SettingsInvalid, load_settings
from queries.names import (
    FAILED_VARIANT,
    OVERRIDABLE,
    PRESETS,
    ErrorsIn,
    Evidence,
    MetricNames,
    MetricPreset,
    name_problem,
)
from queries.prometheus import PrometheusMetrics

OPENFEATURE = PRESETS[MetricPreset.OPENFEATURE]
WINDOW = timedelta(minutes=5)


def _override_value(name: str) -> str:
    if name == "environment_join":
        return "cluster, pod"
    if name in ("errors_counted_in_evaluations", "variants_are_on_off"):
        return "true" if not getattr(OPENFEATURE, name) else "false"
    if name == "errors_in":
        return "both"  # openfeature's is counter
    return f"custom_{name}"


@pytest.mark.parametrize("name", OVERRIDABLE)
def test_every_name_of_a_preset_is_overridden_alone(
    name: str, monkeypatch: pytest.MonkeyPatch, no_rollout_environment: None
) -> None:
    monkeypatch.setenv("ROLLOUT_METRIC_PRESET", "openfeature")
    monkeypatch.setenv(f"ROLLOUT_METRIC_{name.upper()}", _override_value(name))
    names = load_settings().metric_names
    changed = {
        f.name
        for f in fields(MetricNames)
        if getattr(names, f.name) != getattr(OPENFEATURE, f.name)
    }
    assert changed == {name}
    if name == "environment_join":
        assert names.environment_join == ("cluster", "pod")


def test_an_empty_override_removes_an_optional_metric(no_rollout_environment: None) -> None:
    names = load_settings(metric_errors="", metric_environment_label="").metric_names
    assert names.errors == "" and names.single_environment
    assert {Evidence.ERRORS, Evidence.ENVIRONMENT} <= names.missing


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("metric_evaluations", "", "ROLLOUT_METRIC_EVALUATIONS: must not be empty (got '')"),
        (
            "metric_evaluations",
            "flag-evals",
            "ROLLOUT_METRIC_EVALUATIONS: not a Prometheus metric name "
            "([a-zA-Z_:][a-zA-Z0-9_:]*) (got 'flag-evals')",
        ),
        (
            "metric_flag_label",
            "flag key",
            "ROLLOUT_METRIC_FLAG_LABEL: not a Prometheus label name "
            "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) (got 'flag key')",
        ),
        (
            "metric_environment_label",
            "__name__",
            "ROLLOUT_METRIC_ENVIRONMENT_LABEL: not a Prometheus label name "
            "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __) (got '__name__')",
        ),
        (
            "metric_environment_join",
            "job,",
            "ROLLOUT_METRIC_ENVIRONMENT_JOIN: '': must not be empty (got 'job,')",
        ),
        ("metric_preset", "statsd", None),
    ],
)
def test_a_bad_name_is_a_clear_settings_error(
    setting: str, value: str, problem: str | None, no_rollout_environment: None
) -> None:
    with pytest.raises(SettingsInvalid) as raised:
        load_settings(**{setting: value})
    (line,) = raised.value.problems
    if problem is None:
        assert line.startswith("ROLLOUT_METRIC_PRESET: Input should be 'seed', 'usage'")
        assert "'unleash'" in line
    else:
        assert line == problem


def test_the_cli_refuses_a_bad_name_without_a_traceback(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env["ROLLOUT_METRIC_FLAG_LABEL"] = "flag-key"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ROLLOUT_METRIC_FLAG_LABEL: not a Prometheus label name" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_preset_says_where_a_failed_evaluation_is_counted(
    no_rollout_environment: None,
) -> None:
    counted = {preset: names.errors_in for preset, names in PRESETS.items()}
    assert counted == {
        MetricPreset.SEED: ErrorsIn.BOTH,  # as app/flags/evaluator.py records it
        MetricPreset.USAGE: ErrorsIn.REASON,  # no error counter
        MetricPreset.OPENFEATURE: ErrorsIn.COUNTER,  # errors_counted_in_evaluations=False
        MetricPreset.UNLEASH: ErrorsIn.REASON,  # no error counter
    }
    assert not OPENFEATURE.errors_counted_in_evaluations
    assert load_settings(metric_errors_in="counter").metric_names.errors_in is ErrorsIn.COUNTER
    # without an error counter, only evaluations with reason error can hold the failures
    assert MetricNames().failures_in is ErrorsIn.BOTH
    assert replace(OPENFEATURE, errors="").failures_in is ErrorsIn.REASON
    assert OPENFEATURE.failures_in is ErrorsIn.COUNTER


def test_a_bad_errors_in_is_a_clear_settings_error(no_rollout_environment: None) -> None:
    with pytest.raises(SettingsInvalid) as raised:
        load_settings(metric_errors_in="twice")
    assert raised.value.problems == [
        "ROLLOUT_METRIC_ERRORS_IN: Input should be 'counter', 'reason' or 'both' (got 'twice')"
    ]


def test_the_emitter_says_in_words_where_errors_are_counted() -> None:
    assert errors_note(MetricNames()) == (
        "Errors: a failed evaluation counts both in `feature_flag_evaluation_errors_total` and "
        "as `feature_flag_evaluations_total` with reason `error`: the error rate reads the "
        "counter, each failure once."
    )
    assert errors_note(replace(MetricNames(), errors_in=ErrorsIn.REASON)) == (
        "Errors: a failed evaluation counts only as `feature_flag_evaluations_total` with reason "
        "`error` (in any case): the error rate reads those, not "
        "`feature_flag_evaluation_errors_total`."
    )
    assert errors_note(OPENFEATURE) == (
        "Errors: a failed evaluation counts only in `feature_flag_evaluation_error_total`, with "
        "no variant: the error rate reads that counter; the treatment-against-control error "
        "test is not available from this emitter."
    )
    assert errors_note(PRESETS[MetricPreset.USAGE]) == (
        "No error counter: the failed evaluations are `feature_flag_usage_total` with reason "
        "`error` (in any case)."
    )
    assert errors_note(PRESETS[MetricPreset.UNLEASH]) == (
        "No error counter and no reason label: error rates read 0."
    )
    # the seed's way is the default: no note; any other way is one line of the caption
    assert emitter_notes(replace(MetricNames(), errors_in=ErrorsIn.COUNTER)) == [
        errors_note(replace(MetricNames(), errors_in=ErrorsIn.COUNTER))
    ]


def test_name_problem_knows_metric_and_label_fields() -> None:
    assert name_problem("evaluations", "ns:flag_evals_total") is None  # colons: metric only
    assert name_problem("flag_label", "ns:flag") is not None
    assert name_problem("duration", "") is None  # optional
    assert name_problem("flag_label", "") == "must not be empty"


def test_the_seed_queries_read_as_before() -> None:
    source = PrometheusMetrics("http://127.0.0.1:9")
    assert source.evaluations_sum("rate", WINDOW, "production", None, ("flag", "variant")) == (
        "sum by (flag, variant) "
        '(rate(feature_flag_evaluations_total{environment="production"}[300s]))'
    )
    assert source.scoped("x", "production") == "x"


def test_openfeature_queries_join_target_info_and_add_the_failures() -> None:
    source = PrometheusMetrics("http://127.0.0.1:9", OPENFEATURE)
    join = (
        " * on (job, instance) group_left () group by (job, instance) "
        '(target_info{deployment_environment_name="prod"})'
    )
    by = ("feature_flag_key", "feature_flag_result_variant", "feature_flag_result_reason")
    text = source.evaluations_sum("increase", WINDOW, "prod", 'a"b', by)
    assert text == (
        "sum by (feature_flag_key, feature_flag_result_variant, feature_flag_result_reason) "
        '((increase(feature_flag_evaluation_success_total{feature_flag_key="a\\"b"}[300s]))'
        f"{join}) or "
        "label_replace(label_replace(sum by (feature_flag_key) "
        '((increase(feature_flag_evaluation_error_total{feature_flag_key="a\\"b"}[300s]))'
        f'{join}), "feature_flag_result_variant", "{FAILED_VARIANT}", "", ""), '
        '"feature_flag_result_reason", "ERROR", "", "")'
    )
    # one variant asked for: the failures (which have none) are not added
    one = source.evaluations_sum(
        "rate", WINDOW, "prod", "f", (), labels={"feature_flag_result_variant": "on"}
    )
    assert " or " not in one and one.startswith("sum((rate(")


def test_single_environment_mode_filters_on_no_environment() -> None:
    source = PrometheusMetrics("http://127.0.0.1:9", PRESETS[MetricPreset.UNLEASH])
    assert source.series("feature_toggle_usage_total", "production", "f") == (
        'feature_toggle_usage_total{toggle="f"}'
    )
    assert source.scoped("x", "production") == "x"
    assert source.no_series_hint("production") == (
        "prometheus: no series of feature_toggle_usage_total at all (single-environment "
        "mode: there is no environment label to look for)."
    )


def test_unavailable_evidence_comes_from_the_names() -> None:
    assert unavailable_evidence(PrometheusMetrics("http://127.0.0.1:9")) == frozenset()
    openfeature = unavailable_evidence(PrometheusMetrics("http://127.0.0.1:9", OPENFEATURE))
    assert openfeature == {"latency", "config_version"}
    unleash = unavailable_evidence(
        PrometheusMetrics("http://127.0.0.1:9", PRESETS[MetricPreset.UNLEASH])
    )
    assert unleash == {
        "errors",
        "latency",
        "config_version",
        "split_reason",
        "variant",
        "environment",
    }
    assert unavailable_evidence(object()) == frozenset()


def test_reasons_count_in_any_case() -> None:
    counts = pd.DataFrame(
        {
            "variant": ["on", "off", "on", FAILED_VARIANT],
            "reason": ["SPLIT", "Default", "TARGETING_MATCH", "ERROR"],
            "evaluations": [25.0, 75.0, 10.0, 5.0],
        }
    )
    got = variant_counts(counts)
    assert (got["on"].evaluations, got["on"].split, got["on"].errors) == (35.0, 25.0, 0.0)
    assert got["off"].split == 75.0
    assert got[FAILED_VARIANT].errors == 5.0


def test_notes_name_what_the_emitter_cannot_tell() -> None:
    assert emitter_notes(MetricNames()) == []
    assert single_environment_note(MetricNames(), "production") is None
    notes = emitter_notes(OPENFEATURE)
    assert notes == [
        "Environment: the `deployment_environment_name` label of `target_info`, joined on "
        "(job, instance).",
        "Evaluations are `feature_flag_evaluation_success_total` plus "
        "`feature_flag_evaluation_error_total`; failed evaluations show as variant "
        f"`{FAILED_VARIANT}`.",
        errors_note(OPENFEATURE),
        "Latency: not available from this emitter (no duration histogram).",
        "Propagation: not available from this emitter (no config-version metric); the "
        "advance guard fails closed by policy (ROLLOUT_GUARD_WITHOUT_EVIDENCE).",
    ]
    assert "passes by policy" in emitter_notes(OPENFEATURE, pass_without_evidence=True)[-1]
    assert emitter_notes(replace(OPENFEATURE, reason_label=""))[1].startswith("No reason label")


def test_the_evidence_policy_setting_reaches_the_guards(
    no_rollout_environment: None, tmp_path: object
) -> None:
    from app.runtime import Runtime

    assert load_settings().guard_without_evidence is EvidencePolicy.FAIL
    lenient = load_settings(guard_without_evidence="pass")
    policy = Runtime.guard_policy.fget(  # type: ignore[attr-defined]
        Runtime(lenient, None, None, None, [])  # type: ignore[arg-type]
    )
    assert policy.pass_without_evidence


def test_a_guard_without_evidence_fails_closed_or_passes_by_policy() -> None:
    from datetime import UTC, datetime

    from app.rollout.guards import GuardPolicy, VariantCounts, evaluate_guards
    from tests.support.gates import judged_inputs

    now = datetime(2026, 5, 1, tzinfo=UTC)
    inputs = judged_inputs(
        GuardPolicy(),
        now=now,
        percentage=25.0,
        treatment="true",
        baseline="false",
        source="prometheus",
        newest_sample=now,
        variants={"true": VariantCounts(25, 0, 0), "false": VariantCounts(75, 0, 0)},
        at_step_since=None,
        unavailable=frozenset({"variant", "split_reason", "config_version"}),
    )
    closed = {g.name: g for g in evaluate_guards(inputs, GuardPolicy())}
    assert closed["exposure"].detail == (
        "not available from this emitter (no reason label to tell split decisions apart; "
        "no variant label, only on/off): fails closed by policy"
    )
    assert (closed["exposure"].passed, closed["exposure"].value) == (False, None)
    assert not closed["propagation"].passed
    assert closed["error_rate"].passed and closed["data_fresh"].passed
    lenient = {g.name: g for g in evaluate_guards(inputs, GuardPolicy(pass_without_evidence=True))}
    assert lenient["exposure"].passed and lenient["propagation"].passed
    assert lenient["propagation"].detail.endswith("passes by policy")
