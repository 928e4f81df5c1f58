"""The reference evaluation (every reason), hot reload, and the Prometheus metrics."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app.flags.evaluator import (
    EvaluationContext,
    EvaluationMetrics,
    EvaluationResult,
    FlagEvaluator,
    Reason,
    bucket,
    evaluate,
)
from app.flags.loader import BUNDLED_CONFIG, ConfigInvalid
from app.flags.model import FlagDefinition
from queries.names import MetricNames
from tests.support.bundled import copy_bundled_config

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN_RULE = {"name": "admins", "condition": "user_type == 'admin'", "variant": "on"}


def _flag(**fields: Any) -> FlagDefinition:
    return FlagDefinition.model_validate({"key": "demo", "state": "rollout", **fields})


def _user_with_bucket(key: str, low: float, high: float) -> str:
    """A synthetic user id whose bucket for `key` lies in [low, high)."""
    return next(user for n in range(100_000) if low <= bucket(key, user := f"user-{n}") < high)


# --- evaluate: one test per reason ---------------------------------------------------


def test_disabled_serves_default_even_to_targeted_users() -> None:
    flag = _flag(state="disabled", targeting_rules=[ADMIN_RULE])
    result = evaluate(flag, EvaluationContext("u", user_type="admin"), NOW)
    assert result == EvaluationResult("demo", "off", False, Reason.DISABLED)


def test_targeting_match_wins_over_the_rollout() -> None:
    flag = _flag(rollout={"percentage": 0}, targeting_rules=[ADMIN_RULE])
    assert evaluate(flag, EvaluationContext("u", user_type="admin"), NOW).reason is (
        Reason.TARGETING_MATCH
    )
    assert evaluate(flag, EvaluationContext("u", user_type="dev"), NOW).reason is Reason.DEFAULT


def test_highest_priority_rule_wins() -> None:
    flag = _flag(
        variants={"on": True, "off": False, "beta": "beta"},
        targeting_rules=[
            {"name": "low", "condition": "user_type == 'admin'", "variant": "off", "priority": 1},
            {"name": "high", "condition": "user_type == 'admin'", "variant": "beta", "priority": 9},
        ],
    )
    result = evaluate(flag, EvaluationContext("u", user_type="admin"), NOW)
    assert (result.variant, result.value) == ("beta", "beta")


def test_rule_that_raises_counts_as_no_match() -> None:
    # A list is unhashable, so building the set literal raises TypeError at evaluation.
    rule = {"name": "odd", "condition": "user_type in {custom_attributes.get('x')}"}
    flag = _flag(state="enabled", targeting_rules=[{**rule, "variant": "off"}])
    context = EvaluationContext("u", custom_attributes={"x": [1]})
    assert evaluate(flag, context, NOW).reason is Reason.STATIC


def test_enabled_is_static() -> None:
    result = evaluate(_flag(state="enabled"), EvaluationContext("u"), NOW)
    assert result == EvaluationResult("demo", "on", True, Reason.STATIC)


def test_percentage_split_and_default() -> None:
    flag = _flag(rollout={"strategy": "percentage", "percentage": 40})
    inside = _user_with_bucket("demo", 0, 40)
    outside = _user_with_bucket("demo", 40, 100)
    assert evaluate(flag, EvaluationContext(inside), NOW) == EvaluationResult(
        "demo", "on", True, Reason.SPLIT
    )
    assert evaluate(flag, EvaluationContext(outside), NOW) == EvaluationResult(
        "demo", "off", False, Reason.DEFAULT
    )


def test_user_list() -> None:
    flag = _flag(rollout={"strategy": "user_list", "user_list": ["alice"]})
    assert evaluate(flag, EvaluationContext("alice"), NOW).reason is Reason.TARGETING_MATCH
    assert evaluate(flag, EvaluationContext("bob"), NOW).reason is Reason.DEFAULT


def test_gradual_follows_its_schedule() -> None:
    step1, step2 = NOW + timedelta(days=1), NOW + timedelta(days=8)
    flag = _flag(
        rollout={
            "strategy": "gradual",
            "percentage": 10,
            "schedule": [{"at": step2, "percentage": 50}, {"at": step1, "percentage": 25}],
        }
    )
    user = _user_with_bucket("demo", 25, 50)
    assert evaluate(flag, EvaluationContext(user), NOW).reason is Reason.DEFAULT
    assert evaluate(flag, EvaluationContext(user), step1).reason is Reason.DEFAULT
    assert evaluate(flag, EvaluationContext(user), step2 - timedelta(seconds=1)).reason is (
        Reason.DEFAULT
    )
    assert evaluate(flag, EvaluationContext(user), step2).reason is Reason.SPLIT
    early = _user_with_bucket("demo", 10, 25)
    assert evaluate(flag, EvaluationContext(early), NOW).reason is Reason.DEFAULT
    assert evaluate(flag, EvaluationContext(early), step1).reason is Reason.SPLIT


def test_gradual_schedule_without_timezone_is_utc() -> None:
    flag = _flag(
        rollout={
            "strategy": "gradual",
            "schedule": [{"at": "2026-01-02T00:00:00", "percentage": 100}],
        }
    )
    assert flag.rollout.schedule[0].at.tzinfo is UTC
    assert evaluate(flag, EvaluationContext("u"), NOW).reason is Reason.DEFAULT
    naive_later = datetime(2026, 1, 3)  # a naive `now` is taken as UTC too
    assert evaluate(flag, EvaluationContext("u"), naive_later).reason is Reason.SPLIT


def test_non_sticky_rollout_draws_at_random() -> None:
    flag = _flag(rollout={"percentage": 50, "sticky": False})
    reasons = {evaluate(flag, EvaluationContext("same-user"), NOW).reason for _ in range(500)}
    assert reasons == {Reason.SPLIT, Reason.DEFAULT}


def test_seed_targeting_on_the_bundled_config(tmp_path: Path) -> None:
    evaluator = FlagEvaluator(BUNDLED_CONFIG, "production", clock=lambda: NOW)
    beta = EvaluationContext("u", custom_attributes={"beta_user": True})
    assert evaluator.evaluate("phase2_health_checks", beta).reason is Reason.TARGETING_MATCH
    assert evaluator.evaluate("phase2_ml_model_health", beta).reason is Reason.DISABLED
    assert evaluator.evaluate("rollback_mechanism", beta).reason is Reason.STATIC
    staging = FlagEvaluator(BUNDLED_CONFIG, "staging", clock=lambda: NOW)
    oncall = EvaluationContext("ml-oncall-001")
    assert staging.evaluate("phase2_ml_model_health", oncall).value is True


# --- FlagEvaluator -------------------------------------------------------------------


def test_unknown_flag_is_an_error() -> None:
    evaluator = FlagEvaluator(BUNDLED_CONFIG, "staging")
    result = evaluator.evaluate("no_such_flag", EvaluationContext("u"))
    assert result == EvaluationResult("no_such_flag", "", None, Reason.ERROR, "flag_not_found")


def test_context_environment_defaults_to_the_evaluators(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        'version: "1"\nflags:\n  f:\n    state: disabled\n'
        "  g:\n    state: rollout\n    rollout: {percentage: 0}\n"
        "    targeting_rules:\n"
        '      - {name: s, condition: "environment == \'staging\'", variant: "on"}\n',
        encoding="utf-8",
    )
    evaluator = FlagEvaluator(path, "staging")
    assert evaluator.evaluate("g", EvaluationContext("u")).reason is Reason.TARGETING_MATCH
    prod = EvaluationContext("u", environment="production")
    assert evaluator.evaluate("g", prod).reason is Reason.DEFAULT


def test_invalid_config_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text('version: "1"\nflags:\n  f:\n    state: rolout\n', encoding="utf-8")
    with pytest.raises(ConfigInvalid):
        FlagEvaluator(path, "staging")


def _edit(path: Path, old: str, new: str, *, tick: int) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    # Force a new mtime: two writes within the file system's clock tick look unchanged.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + tick * 1_000_000_000))


def test_hot_reload_picks_up_edits_and_keeps_the_old_config_when_invalid(
    tmp_path: Path,
) -> None:
    path = copy_bundled_config(tmp_path)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(path, "staging", EvaluationMetrics(registry))
    assert evaluator.maybe_reload() is False
    assert evaluator.config.flag("phase2_health_checks").percentage == 50.0

    staging = tmp_path / "feature_flags_staging.yaml"
    _edit(staging, "rollout: {percentage: 50.0}", "rollout: {percentage: 75.0}", tick=1)
    assert evaluator.maybe_reload() is True
    assert evaluator.config.flag("phase2_health_checks").percentage == 75.0
    assert (
        registry.get_sample_value(
            "feature_flag_rollout_percentage",
            {"flag": "phase2_health_checks", "environment": "staging"},
        )
        == 75.0
    )

    before = evaluator.config.loaded_version
    _edit(path, 'version: "1.0.0"', 'version: "1.0.1"', tick=2)
    _edit(path, "state: enabled", "state: rolout", tick=3)
    assert evaluator.maybe_reload() is False
    assert evaluator.config.version == "1.0.0"
    assert evaluator.last_error is not None
    assert "rolout" in str(evaluator.last_error)
    assert evaluator.maybe_reload() is False  # reported once, not on every poll
    assert (
        registry.get_sample_value(
            "feature_flag_config_reload_errors_total", {"environment": "staging"}
        )
        == 1.0
    )

    _edit(path, "state: rolout", "state: enabled", tick=4)
    assert evaluator.maybe_reload() is True
    assert evaluator.config.version == "1.0.1"
    assert evaluator.last_error is None
    loaded = evaluator.config.loaded_version
    assert loaded.startswith("1.0.1+") and loaded != before
    info = {"environment": "staging", "config_version": loaded}
    assert registry.get_sample_value("feature_flag_config_info", info) == 1.0
    old = {"environment": "staging", "config_version": before}
    assert registry.get_sample_value("feature_flag_config_info", old) is None


# --- metrics -------------------------------------------------------------------------


def test_metrics_count_every_evaluation() -> None:
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(BUNDLED_CONFIG, "staging", EvaluationMetrics(registry))
    for n in range(30):
        evaluator.evaluate("rollback_mechanism", EvaluationContext(f"u{n}"), 0.0004)
    for n in range(4):
        evaluator.evaluate("phase3_opentelemetry", EvaluationContext(f"u{n}"), 0.002)
    for n in range(3):
        evaluator.evaluate("missing_flag", EvaluationContext(f"u{n}"))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"environment": "staging", **labels})

    evaluations = "feature_flag_evaluations_total"
    assert sample(evaluations, flag="rollback_mechanism", variant="on", reason="static") == 30
    assert sample(evaluations, flag="phase3_opentelemetry", variant="off", reason="disabled") == 4
    assert sample(evaluations, flag="missing_flag", variant="", reason="error") == 3
    errors = "feature_flag_evaluation_errors_total"
    assert sample(errors, flag="missing_flag", error_type="flag_not_found") == 3
    assert sample(errors, flag="rollback_mechanism", error_type="flag_not_found") is None

    duration = "feature_flag_evaluation_duration_seconds"
    assert sample(f"{duration}_count", flag="rollback_mechanism") == 30
    assert sample(f"{duration}_bucket", flag="rollback_mechanism", le="0.0005") == 30
    assert sample(f"{duration}_bucket", flag="phase3_opentelemetry", le="0.001") == 0
    assert sample(f"{duration}_bucket", flag="phase3_opentelemetry", le="0.0025") == 4
    assert sample(f"{duration}_sum", flag="phase3_opentelemetry") == pytest.approx(0.008)
    # The measured latency is used when no override is given.
    assert sample(f"{duration}_count", flag="missing_flag") == 3

    loaded = evaluator.config.loaded_version
    assert loaded.startswith("1.0.0+")
    assert sample("feature_flag_config_info", config_version=loaded) == 1.0
    percentage = "feature_flag_rollout_percentage"
    assert sample(percentage, flag="phase2_health_checks") == 50.0
    assert sample(percentage, flag="rollback_mechanism") == 100.0
    assert sample(percentage, flag="phase3_custom_metrics") == 0.0


def test_metrics_follow_configured_names() -> None:
    registry = CollectorRegistry()
    names = MetricNames(
        evaluations="feature_flag_usage_total",
        errors="",
        duration="",
        flag_label="flag_name",
        variant_label="enabled",
    )
    evaluator = FlagEvaluator(BUNDLED_CONFIG, "production", EvaluationMetrics(registry, names))
    evaluator.evaluate("rollback_mechanism", EvaluationContext("u"))
    evaluator.evaluate("nope", EvaluationContext("u"))
    labels = {"flag_name": "rollback_mechanism", "enabled": "on", "reason": "static"}
    assert (
        registry.get_sample_value(
            "feature_flag_usage_total", {**labels, "environment": "production"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "feature_flag_evaluation_errors_total",
            {"flag_name": "nope", "error_type": "flag_not_found", "environment": "production"},
        )
        is None
    )


def test_removed_flag_loses_its_percentage_series(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = EvaluationMetrics(registry)
    path = copy_bundled_config(tmp_path)
    evaluator = FlagEvaluator(path, "production", metrics)
    labels = {"flag": "ab_testing", "environment": "production"}
    assert registry.get_sample_value("feature_flag_rollout_percentage", labels) == 25.0
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("  ab_testing:")], encoding="utf-8")
    (tmp_path / "feature_flags_production.yaml").write_text(
        "flags:\n  canary_deployment:\n    rollout: {percentage: 5.0}\n", encoding="utf-8"
    )
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert evaluator.maybe_reload() is True
    assert "ab_testing" not in evaluator.config.flags
    assert registry.get_sample_value("feature_flag_rollout_percentage", labels) is None


def test_evaluations_follow_a_reload_of_the_same_flag(tmp_path: Path) -> None:
    """Each flag is compiled once per config: a reload must replace what was compiled."""
    path = tmp_path / "feature_flags.yaml"
    body = 'version: "1"\nflags:\n  f:\n    state: rollout\n    rollout: {percentage: %s}\n'
    path.write_text(body % 0, encoding="utf-8")
    evaluator = FlagEvaluator(path, "production", EvaluationMetrics(CollectorRegistry()))
    users = [EvaluationContext(f"u{n}") for n in range(50)]
    assert {evaluator.evaluate("f", user).reason for user in users} == {Reason.DEFAULT}
    path.write_text(body % 100, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert evaluator.maybe_reload() is True
    assert {evaluator.evaluate("f", user).reason for user in users} == {Reason.SPLIT}
    path.write_text(body.replace("f:", "g:") % 100, encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert evaluator.maybe_reload() is True
    assert evaluator.evaluate("f", users[0]).error_type == "flag_not_found"


def test_evaluate_sees_a_changed_copy_of_a_flag_it_has_seen() -> None:
    flag = _flag(rollout={"percentage": 0})
    users = [EvaluationContext(f"u{n}") for n in range(50)]
    assert {evaluate(flag, user, NOW).reason for user in users} == {Reason.DEFAULT}
    everyone = flag.model_copy(
        update={"rollout": flag.rollout.model_copy(update={"percentage": 100})}
    )
    assert {evaluate(everyone, user, NOW).reason for user in users} == {Reason.SPLIT}
    assert {evaluate(flag, user, NOW).reason for user in users} == {Reason.DEFAULT}
