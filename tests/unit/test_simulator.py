from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.demo.launcher import prepare_state_dir
from app.demo.simulator import RollupAccumulator, Workload, backfill
from app.flags.evaluator import EvaluationResult, Reason
from app.metrics_db.database import open_database
from queries.sql import SqlMetrics

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_accumulator_turns_evaluations_into_cumulative_rollups():
    acc = RollupAccumulator()
    on = EvaluationResult("f", "on", True, Reason.SPLIT)
    failed = EvaluationResult("f", "off", False, Reason.ERROR, "timeout")
    acc.add("prod", on, 0.0008)
    acc.add("prod", on, 0.008)
    acc.add("prod", failed, 2.0)
    rollups = {(r.variant, r.reason): r for r in acc.drain(NOW, 10.0)}
    split = rollups[("on", "split")]
    assert (split.evaluations, split.errors, split.latency_count) == (2, 0, 2)
    assert split.latency_sum == pytest.approx(0.0088)
    assert split.latency_buckets[3] == 1  # <= 1 ms
    assert split.latency_buckets[6] == 2  # <= 10 ms
    assert split.latency_buckets[-1] == 2
    error = rollups[("off", "error")]
    assert (error.evaluations, error.errors, error.latency_buckets[-2:]) == (1, 1, (0, 1))
    assert acc.drain(NOW, 10.0) == []  # drained


def test_workload_metrics_and_rollups_count_the_same_evaluations(tmp_path: Path):
    flags = prepare_state_dir(tmp_path)
    registry = CollectorRegistry()
    workload = Workload(flags, registry, seed=3)
    made = workload.tick(60.0, NOW)
    rollups = workload.rollups.drain(NOW, 60.0)
    assert made > 500
    assert sum(r.evaluations for r in rollups) == made
    exported = sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "feature_flag_evaluations"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    assert exported == made
    assert {r.environment for r in rollups} == {"production", "staging"}


def test_backfilled_history_has_the_demo_texture(tmp_path: Path):
    flags = prepare_state_dir(tmp_path)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    backfill(Workload(flags, CollectorRegistry(), seed=5), engine, NOW, minutes=10, interval=10.0)
    source = SqlMetrics(engine)
    rates = source.evaluation_rates("production", timedelta(minutes=5), NOW)
    errors = source.error_rates("production", timedelta(minutes=5), NOW)
    total = rates.groupby("flag")["evaluations_per_second"].sum()
    ratio = errors.set_index("flag")["errors_per_second"] / total
    assert ratio["phase2_health_checks"] > 0.05  # the unhealthy flag of the demo
    assert ratio.drop("phase2_health_checks").max() < 0.02
    p99 = source.latency_quantiles("production", timedelta(minutes=5), NOW, (0.99,))
    slowest = p99.sort_values("seconds").iloc[-1]
    assert slowest["flag"] == "ab_testing" and slowest["seconds"] > 0.05
    assert source.newest_sample_time("production", NOW) == NOW


def test_prepare_state_dir_keeps_an_edited_config(tmp_path: Path):
    flags = prepare_state_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("feature_flags*.yaml")) == [
        "feature_flags.yaml",
        "feature_flags_production.yaml",
        "feature_flags_staging.yaml",
    ]
    flags.write_text(flags.read_text() + "\n# edited by an operator\n")
    prepare_state_dir(tmp_path)
    assert flags.read_text().endswith("# edited by an operator\n")


def test_a_regression_injected_on_demand_fails_only_that_flags_treatment(tmp_path: Path):
    flags = prepare_state_dir(tmp_path)
    workload = Workload(flags, CollectorRegistry(), seed=11)
    workload.fail_treatment("ab_testing", 1.0)
    workload.tick(120.0, NOW)
    rollups = workload.rollups.drain(NOW, 120.0)

    def failed(flag: str, variant: str) -> tuple[int, int]:
        cells = [r for r in rollups if r.flag == flag and r.variant == variant]
        return sum(r.errors for r in cells), sum(r.evaluations for r in cells)

    errors, total = failed("ab_testing", "treatment")
    assert total > 50 and errors == total  # every treatment evaluation fails, both environments
    control_errors, control_total = failed("ab_testing", "control")
    assert control_total > 50 and control_errors == 0  # ab_testing is otherwise clean

    workload.fail_treatment("ab_testing", 0.0)
    workload.tick(120.0, NOW)
    after = [r for r in workload.rollups.drain(NOW, 120.0) if r.flag == "ab_testing"]
    assert sum(r.evaluations for r in after) > 100 and sum(r.errors for r in after) == 0
