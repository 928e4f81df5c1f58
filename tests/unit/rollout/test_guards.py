import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.analysis.failures import FlagErrors
from app.recorded import Unrecognised
from app.rollout.guards import (
    ADVANCE_GUARDS,
    DependencyStatus,
    GuardInputs,
    GuardName,
    GuardPolicy,
    GuardResult,
    VariantCounts,
    evaluate_guards,
)
from queries.names import ErrorsIn
from tests.support.gates import judged_inputs

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
POLICY = GuardPolicy()
HEALTHY = GuardInputs(
    now=NOW,
    configured_percentage=25.0,
    treatment="on",
    baseline="off",
    source="prometheus",
    newest_sample=NOW - timedelta(seconds=10),
    variants={
        "on": VariantCounts(evaluations=2500, errors=5, split=2500),
        "off": VariantCounts(evaluations=7500, errors=15, split=7500),
    },
    at_step_since=NOW - timedelta(hours=1),
    dependencies=(DependencyStatus("phase1_main", 100.0, 0.999),),
    instance_versions={"10.0.0.1:9464": "abc", "10.0.0.2:9464": "abc"},
    current_config_version="abc",
)


def judged(inputs: GuardInputs) -> GuardInputs:
    """`inputs` with its data gates judged on its counts, counted evenly since the step
    began (`tests.support.gates`), as the gatherer judges them."""
    fields = {f.name: getattr(inputs, f.name) for f in dataclasses.fields(inputs)}
    for derived in ("gates", "window"):
        fields.pop(derived)
    fields["percentage"] = fields.pop("configured_percentage")
    return judged_inputs(POLICY, **fields)


def report(inputs):
    return {g.name: g for g in evaluate_guards(judged(inputs), POLICY)}


def test_a_healthy_flag_passes_every_guard_in_order():
    results = evaluate_guards(judged(HEALTHY), POLICY)
    assert [g.name for g in results] == [
        "data_fresh",
        "error_rate",
        "soak_time",
        "dependencies",
        "exposure",
        "propagation",
    ]
    assert all(g.passed for g in results), [g for g in results if not g.passed]
    guards = {g.name: g for g in results}
    assert guards["error_rate"].value == pytest.approx(20 / 10000)
    assert guards["error_rate"].window == "since the step began 60 min ago"
    assert guards["error_rate"].detail.startswith(
        "0.20 % of 10000 evaluations failed; on − off +0.00 pt (always-valid interval −"
    )
    assert guards["exposure"].value == pytest.approx(0.25)
    assert guards["propagation"].value == "2/2"


def test_no_source_fails_closed():
    guards = report(
        replace(
            HEALTHY,
            source="",
            newest_sample=None,
            variants=None,
            instance_versions=None,
            notices=("prometheus unavailable",),
        )
    )
    assert (
        not guards["data_fresh"].passed and "prometheus unavailable" in guards["data_fresh"].detail
    )
    assert not guards["error_rate"].passed
    assert not guards["exposure"].passed
    assert not guards["propagation"].passed


def test_stale_data_fails():
    guard = report(replace(HEALTHY, newest_sample=NOW - timedelta(minutes=5)))["data_fresh"]
    assert not guard.passed and guard.value == 300.0 and "stale" in guard.detail


def test_error_rate_above_threshold_fails_and_only_proof_fails_it_on_data():
    variants = {"on": VariantCounts(2500, 30, 2500), "off": VariantCounts(7500, 90, 7500)}
    guard = report(replace(HEALTHY, variants=variants))["error_rate"]
    assert not guard.passed
    assert guard.value == pytest.approx(0.012)
    assert guard.threshold == 0.01
    assert not guard.on_data  # 1.2 % of 10,000 over an hour does not prove > 1 % yet
    assert "above 1 %, not yet proven" in guard.detail
    proven = {"on": VariantCounts(2500, 100, 2500), "off": VariantCounts(7500, 300, 7500)}
    guard = report(replace(HEALTHY, variants=proven))["error_rate"]
    assert not guard.passed and guard.on_data
    assert "4.00 % of 10000 evaluations failed: proven above 1 % (e-value" in guard.detail


def test_treatment_proven_worse_than_baseline_fails_under_the_threshold():
    # 0.9 % on the treatment vs 0.1 % on the baseline: overall 0.3 %, under 1 %,
    # but the always-valid test proves the treatment worse on 100,000 evaluations
    variants = {"on": VariantCounts(25_000, 220, 25_000), "off": VariantCounts(75_000, 80, 75_000)}
    guard = report(replace(HEALTHY, variants=variants))["error_rate"]
    assert guard.value == pytest.approx(0.003)
    assert not guard.passed and guard.on_data
    assert "on proven to fail more often than off" in guard.detail


def test_the_flags_errors_from_the_counter_fail_the_guard_though_no_reason_says_error():
    # issue 21: 20 % fail, counted in the error counter only; every reason is split
    errors = FlagErrors(failed=822.2, evaluations=4111, read_from=ErrorsIn.BOTH)
    split = {"on": VariantCounts(1028, 0, 1028), "off": VariantCounts(3083, 0, 3083)}
    guard = report(replace(HEALTHY, variants=split, errors=errors))["error_rate"]
    assert not guard.passed
    assert guard.value == pytest.approx(0.2)
    assert guard.on_data
    assert guard.detail.startswith("20.00 % of 4111 evaluations failed: proven above 1 %")


def test_failures_counted_in_both_places_count_once():
    # 20 reason-error evaluations that the counter counted too: 0.2 %, not 0.4 %
    errors = FlagErrors(failed=20, evaluations=10_000, read_from=ErrorsIn.BOTH)
    guard = report(replace(HEALTHY, errors=errors))["error_rate"]
    assert guard.passed and guard.value == pytest.approx(0.002)
    assert guard.detail.startswith("0.20 % of 10000 evaluations failed; on − off")


def test_without_a_variant_on_failures_the_per_variant_test_is_not_available():
    # the counter only (OpenFeature): the flag-level rate still gates
    calm = FlagErrors(failed=20, evaluations=10_000, read_from=ErrorsIn.COUNTER)
    guard = report(replace(HEALTHY, errors=calm))["error_rate"]
    assert guard.passed and guard.value == pytest.approx(0.002)
    assert guard.detail == (
        "0.20 % of 10000 evaluations failed; on − off: not available "
        "from this emitter (its failed evaluations carry no variant)"
    )
    failing = replace(calm, failed=300)
    guard = report(replace(HEALTHY, errors=failing))["error_rate"]
    assert not guard.passed
    assert guard.detail.startswith("3.00 % of 10000 evaluations failed: proven above 1 %")
    # per-variant counts that would fail the test are not read as failures by variant
    skewed = {"on": VariantCounts(2500, 22, 2500), "off": VariantCounts(7500, 8, 7500)}
    assert report(replace(HEALTHY, variants=skewed, errors=calm))["error_rate"].passed


def test_without_a_counter_answer_the_reasons_are_the_failures():
    assert HEALTHY.errors is None
    guard = report(HEALTHY)["error_rate"]
    assert guard.value == pytest.approx(20 / 10000)


def test_soak_time():
    short = report(replace(HEALTHY, at_step_since=NOW - timedelta(minutes=5)))["soak_time"]
    assert not short.passed and short.value == 300 and short.threshold == 900
    unknown = report(replace(HEALTHY, at_step_since=None))["soak_time"]
    assert unknown.passed and "no change recorded" in unknown.detail


def test_dependencies_must_be_complete_and_stable():
    deps = (
        DependencyStatus("a", 50.0, 1.0),
        DependencyStatus("b", 100.0, 0.98),
        DependencyStatus("c", 100.0, None),
        DependencyStatus("d", 100.0, 0.995),
    )
    guard = report(replace(HEALTHY, dependencies=deps))["dependencies"]
    assert not guard.passed
    assert guard.value == 1
    assert "a at 50 %" in guard.detail and "b success 98.00 %" in guard.detail
    assert "c has no evaluations" in guard.detail


def test_exposure_drift_and_sample_ratio_mismatch():
    drifted = {"on": VariantCounts(3200, 0, 3200), "off": VariantCounts(6800, 0, 6800)}
    guard = report(replace(HEALTHY, variants=drifted))["exposure"]
    assert not guard.passed and guard.value == pytest.approx(0.32) and guard.on_data
    assert "sample ratio mismatch" in guard.detail
    # off by more than the tolerance on too few evaluations: an advance waits, no proof
    few = {"on": VariantCounts(32, 0, 32), "off": VariantCounts(68, 0, 68)}
    unsure = report(replace(HEALTHY, variants=few))["exposure"]
    assert not unsure.passed and not unsure.on_data
    assert "not yet proven a mismatch" in unsure.detail
    # within the configured tolerance (2 points) on a large sample: the share is as set
    big = {"on": VariantCounts(260_000, 0, 260_000), "off": VariantCounts(740_000, 0, 740_000)}
    srm = report(replace(HEALTHY, variants=big))["exposure"]
    assert srm.value == pytest.approx(0.26) and srm.passed
    # Targeting matches do not count: only split evaluations are compared.
    targeted = {"on": VariantCounts(9000, 0, 2500), "off": VariantCounts(7500, 0, 7500)}
    assert report(replace(HEALTHY, variants=targeted))["exposure"].passed


def test_propagation_names_the_laggards():
    versions = {"a:1": "abc", "b:1": "old", "c:1": "abc"}
    guard = report(replace(HEALTHY, instance_versions=versions))["propagation"]
    assert not guard.passed and guard.value == "2/3" and "behind: b:1" in guard.detail
    assert not report(replace(HEALTHY, instance_versions={}))["propagation"].passed


def test_a_proof_below_the_threshold_says_so_in_words():
    variants = {"on": VariantCounts(25_000, 220, 25_000), "off": VariantCounts(75_000, 80, 75_000)}
    guard = report(replace(HEALTHY, variants=variants))["error_rate"]
    assert guard.detail.startswith(
        "0.30 % of 100000 evaluations failed; on proven to fail more often than off (e-value "
    )
    assert "; on − off +0.77 pt (always-valid interval +" in guard.detail
    # the same shares on a tenth of the evaluations prove nothing yet: it passes
    fewer = {"on": VariantCounts(2500, 22, 2500), "off": VariantCounts(7500, 8, 7500)}
    assert report(replace(HEALTHY, variants=fewer))["error_rate"].passed


def test_guard_names_are_members_and_serialise_as_their_words():
    results = evaluate_guards(judged(HEALTHY), POLICY)
    assert tuple(g.name for g in results) == ADVANCE_GUARDS
    assert all(type(g.name) is GuardName for g in results)
    documents = [g.as_json() for g in results]
    assert [d["name"] for d in documents] == [
        "data_fresh",
        "error_rate",
        "soak_time",
        "dependencies",
        "exposure",
        "propagation",
    ]
    assert all(type(d["name"]) is str for d in documents)
    assert [GuardResult.from_json(d) for d in documents] == results


def test_a_report_on_several_flags_names_each_flag_and_reads_back():
    guard = GuardResult(GuardName.SOAK_TIME, False, 60, 900.0, "at 25 % for 1.0 min", flag="a_b")
    document = guard.as_json()
    assert document["name"] == "a_b: soak_time" == guard.label
    read = GuardResult.from_json(document)
    assert (read.name, read.flag) == (GuardName.SOAK_TIME, "a_b") and read == guard


def test_a_stored_guard_name_no_guard_has_any_more_stays_readable():
    for stored in ("sample_ratio", "alpha: sample_ratio", "?"):
        read = GuardResult.from_json({"name": stored, "passed": False, "detail": "old"})
        assert isinstance(read.name, Unrecognised) and read.name == stored
        assert (read.flag, read.label, read.as_json()["name"]) == ("", stored, stored)
    assert GuardResult.from_json({"passed": True}).label == "?"
