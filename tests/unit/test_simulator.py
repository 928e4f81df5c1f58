from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.demo.launcher import prepare_state_dir
from app.demo.simulator import FailingTreatment, RollupAccumulator, Workload, backfill
from app.flags.evaluator import EvaluationResult, Reason
from app.metrics_db.database import open_database
from app.metrics_db.records import EvaluationRollup
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


def _treatment_error_ratio(rollups: list[EvaluationRollup], flag: str) -> tuple[float, float]:
    """(errors / evaluations of the treatment `on`, of the baseline `off`) in production."""
    ratios = []
    for variant in ("on", "off"):
        cells = [
            r
            for r in rollups
            if (r.environment, r.flag, r.variant) == ("production", flag, variant)
        ]
        ratios.append(sum(r.errors for r in cells) / sum(r.evaluations for r in cells))
    return ratios[0], ratios[1]


def test_a_failing_treatment_fails_only_from_its_percentage_up(tmp_path: Path):
    flags = prepare_state_dir(tmp_path)
    flag = "phase1_environment_configs"  # production: 5 %
    failing = [FailingTreatment.parse(f"{flag}:40@25")]
    assert failing == [FailingTreatment(flag, 0.4, 25.0)]

    below = Workload(flags, CollectorRegistry(), seed=3, failing=failing)
    below.tick(3600.0, NOW, export=False)
    treated, base = _treatment_error_ratio(below.rollups.drain(NOW, 3600.0), flag)
    assert treated < 0.02 and base < 0.02  # at 5 %: no regression yet

    override = tmp_path / "feature_flags_production.yaml"
    override.write_text(
        override.read_text().replace(
            "phase1_environment_configs:\n    rollout: {percentage: 5.0}",
            "phase1_environment_configs:\n    rollout: {percentage: 25.0}",
        )
    )
    at_step = Workload(flags, CollectorRegistry(), seed=3, failing=failing)
    assert at_step.evaluators["production"].config.flags[flag].percentage == 25.0
    at_step.tick(3600.0, NOW, export=False)
    treated, base = _treatment_error_ratio(at_step.rollups.drain(NOW, 3600.0), flag)
    assert 0.35 < treated < 0.45 and base < 0.02


@pytest.mark.parametrize("text", ["x", "flag:40", "flag:0@25", "flag:150@25", ":40@25", "f:40@x"])
def test_a_failing_treatment_written_wrong_is_refused(text: str):
    with pytest.raises(ValueError, match="FLAG"):
        FailingTreatment.parse(text)


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
