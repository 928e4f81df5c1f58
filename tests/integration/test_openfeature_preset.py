"""The `openfeature` preset on what the official OpenFeature JS SDK really exports.

The session's services (tests/openfeature: `@openfeature/server-sdk`, the MetricsHook,
`@opentelemetry/exporter-prometheus`, no relabeling) evaluate planned flags in two
environments; a real Prometheus scrapes them every second. Every number is checked
against what the services counted from the SDK's answers.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from app.analysis.health import Health, HealthThresholds
from app.audit import AuditLog
from app.evidence.windows import WindowPlan
from app.flags.backend import FlagSnapshot
from app.flags.loader import load_config
from app.rollout.evidence import gather_guard_inputs
from app.rollout.guards import NO_VARIANT_ERRORS, GuardPolicy, GuardResult, evaluate_guards
from app.services.overview import load_overview
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import empty_frame
from queries.names import FAILED_VARIANT, PRESETS, MetricPreset
from queries.prometheus import PrometheusMetrics
from tests.support.openfeature import PLANS, WINDOW, OpenFeatureScrape

pytestmark = pytest.mark.prometheus

NAMES = PRESETS[MetricPreset.OPENFEATURE]

CONFIG = """
version: "1"
flags:
  new_checkout:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 25}
  dark_mode:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 50}
  search_v2:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 10}
"""


def _source(scrape: OpenFeatureScrape) -> PrometheusMetrics:
    return PrometheusMetrics(scrape.prometheus.url, NAMES)


def _per_flag(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    for flag, variant, rate in frame.itertuples(index=False):
        rates.setdefault(flag, {})[variant] = rate
    return rates


def _counted_shares(counted: dict[str, object]) -> dict[str, float]:
    """What the service counted, as shares of every evaluation (failed ones apart)."""
    total = float(counted["evaluations"])  # type: ignore[arg-type]
    shares = {variant: n / total for variant, n in counted["variants"].items()}  # type: ignore[attr-defined]
    if counted["errors"]:
        shares[FAILED_VARIANT] = float(counted["errors"]) / total  # type: ignore[arg-type]
    return shares


def test_the_exporter_serves_the_names_the_preset_reads(
    openfeature_scrape: OpenFeatureScrape,
) -> None:
    text = openfeature_scrape.exposition("production")
    assert 'deployment_environment_name="production"' in text
    assert "\ntarget_info{" in text
    assert 'feature_flag_evaluation_success_total{feature_flag_key="dark_mode"' in text
    assert 'feature_flag_result_reason="SPLIT"' in text
    assert 'feature_flag_evaluation_error_total{feature_flag_key="new_checkout"' in text
    # the environment is on no flag series, and there is no histogram nor config gauge
    flag_lines = [line for line in text.splitlines() if line.startswith("feature_flag_")]
    assert flag_lines and not any("deployment_environment" in line for line in flag_lines)
    assert "duration" not in text and "config" not in text


@pytest.mark.parametrize("environment", list(PLANS))
def test_rates_and_shares_equal_what_the_sdk_counted(
    openfeature_scrape: OpenFeatureScrape, environment: str
) -> None:
    at = openfeature_scrape.newest_scrape()
    source = _source(openfeature_scrape)
    rates = _per_flag(source.evaluation_rates(environment, WINDOW, at))
    counted = openfeature_scrape.counted(environment)
    assert set(rates) == set(PLANS[environment])
    for flag, plan in PLANS[environment].items():
        total = sum(rates[flag].values())
        expected = counted.rate(flag, at - WINDOW, at, sum(plan.values()))
        print(f"{environment} {flag}: {total:.1f}/s from Prometheus, {expected:.1f}/s counted")
        assert total == pytest.approx(expected, rel=0.15)
        shares = {variant: rate / total for variant, rate in rates[flag].items()}
        assert shares == pytest.approx(_counted_shares(counted.flags[flag]), abs=0.005)


def test_error_rates_come_from_the_error_counter(openfeature_scrape: OpenFeatureScrape) -> None:
    at = openfeature_scrape.newest_scrape()
    source = _source(openfeature_scrape)
    rates = _per_flag(source.evaluation_rates("production", WINDOW, at))
    errors = source.error_rates("production", WINDOW, at)
    failing = dict(zip(errors["flag"], errors["errors_per_second"], strict=True))
    counted = openfeature_scrape.counted("production").flags
    assert set(failing) == {"new_checkout", "search_v2"}  # dark_mode never failed
    for flag in failing:
        ratio = failing[flag] / sum(rates[flag].values())
        assert ratio == pytest.approx(
            counted[flag]["errors"] / counted[flag]["evaluations"], abs=0.005
        )
    assert failing["search_v2"] / sum(rates["search_v2"].values()) == pytest.approx(1.0)
    assert source.error_rates("staging", WINDOW, at).empty  # nothing fails there


def _overview(scrape: OpenFeatureScrape, environment: str, tmp_path: Path):
    config = tmp_path / "feature_flags.yaml"
    config.write_text(textwrap.dedent(CONFIG).lstrip("\n"), encoding="utf-8")
    at = scrape.newest_scrape()
    return load_overview(
        config=load_config(config),
        environment=environment,
        sources=[_source(scrape)],
        changes=empty_frame(LAST_CHANGE_COLUMNS),
        thresholds=HealthThresholds(),
        window=WINDOW,
        sparkline_span=timedelta(minutes=5),
        at=at,
        recent=timedelta(hours=1),
        gates=POLICY.gate_settings(),  # the guards' slots: errors on their grid
    )


def test_overview_shows_the_failing_flags_unhealthy(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    overview = _overview(openfeature_scrape, "production", tmp_path)
    assert overview.source == "prometheus" and overview.notices == ()
    rows = {row.flag: row for row in overview.rows}
    assert rows["new_checkout"].health is Health.UNHEALTHY
    assert rows["new_checkout"].error_rate == pytest.approx(0.1, abs=0.005)
    # a flag that always fails has no success series at all: unhealthy, not "no data"
    assert rows["search_v2"].health is Health.UNHEALTHY
    assert rows["search_v2"].error_rate == pytest.approx(1.0)
    assert rows["search_v2"].variants == {FAILED_VARIANT: 1.0}
    assert rows["dark_mode"].health is Health.HEALTHY
    assert rows["dark_mode"].variants == pytest.approx({"on": 0.55, "off": 0.45}, abs=0.005)
    assert rows["dark_mode"].p99_seconds is None  # no histogram from this emitter
    assert rows["dark_mode"].sparkline and max(rows["dark_mode"].sparkline) > 0
    staging = {row.flag: row for row in _overview(openfeature_scrape, "staging", tmp_path).rows}
    assert staging["new_checkout"].health is Health.HEALTHY
    assert staging["new_checkout"].variants == pytest.approx({"on": 0.05, "off": 0.95}, abs=0.005)
    assert staging["search_v2"].health is Health.NO_DATA  # not evaluated in staging


def test_an_environment_without_series_says_which_join_it_looked_for(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    overview = _overview(openfeature_scrape, "qa", tmp_path)
    assert [row.health for row in overview.rows] == [Health.NO_DATA] * 3
    assert overview.notices == (
        'prometheus: no series of feature_flag_evaluation_success_total for environment "qa"; '
        'looked for target_info{deployment_environment_name="qa"} joined on (job, instance) '
        "to feature_flag_evaluation_success_total.",
    )


def _guards(
    scrape: OpenFeatureScrape, flag: str, tmp_path: Path, policy: GuardPolicy
) -> dict[str, GuardResult]:
    config = tmp_path / "feature_flags.yaml"
    config.write_text(textwrap.dedent(CONFIG).lstrip("\n"), encoding="utf-8")
    snapshot = FlagSnapshot("production", load_config(config, "production"))
    at = scrape.newest_scrape()
    inputs = gather_guard_inputs(
        [_source(scrape)], AuditLog(None, tmp_path / "journal.jsonl"), snapshot, flag, policy, at
    )
    return {result.name: result for result in evaluate_guards(inputs, policy)}


#: Prometheus scrapes every second: 2 s slots judge the last seconds of evaluations
POLICY = GuardPolicy(soak_window=WINDOW, min_soak=timedelta(0), slots=WindowPlan(slot=2.0))


def test_error_rate_guard_catches_the_flag_failing_ten_percent(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    guards = _guards(openfeature_scrape, "new_checkout", tmp_path, POLICY)
    assert guards["data_fresh"].passed
    error_rate = guards["error_rate"]
    assert not error_rate.passed
    assert error_rate.value == pytest.approx(0.1, abs=0.005)
    assert error_rate.detail.startswith("10.0")
    # upper-case SPLIT counts: 45 of 180 split evaluations per tick on "on" = 25 %
    exposure = guards["exposure"]
    assert exposure.passed and exposure.value == pytest.approx(0.25, abs=0.005)


def test_exposure_guard_reads_upper_case_reasons_and_skips_targeted_users(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    guards = _guards(openfeature_scrape, "dark_mode", tmp_path, POLICY)
    assert guards["error_rate"].passed and guards["error_rate"].value == 0
    # failed evaluations carry no variant here: no treatment-against-control test
    assert guards["error_rate"].detail.endswith(f"on − off: {NO_VARIANT_ERRORS}")
    exposure = guards["exposure"]
    # 55 % of evaluations are "on", but the targeted 10 % are not the split's doing
    assert exposure.passed and exposure.value == pytest.approx(0.5, abs=0.005)


def test_propagation_is_not_available_and_fails_closed_unless_the_policy_passes_it(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    closed = _guards(openfeature_scrape, "dark_mode", tmp_path, POLICY)["propagation"]
    assert not closed.passed and closed.value is None
    assert closed.detail == (
        "not available from this emitter (no config-version metric): fails closed by policy"
    )
    lenient = replace(POLICY, pass_without_evidence=True)
    guards = _guards(openfeature_scrape, "dark_mode", tmp_path, lenient)
    assert guards["propagation"].passed
    assert guards["propagation"].detail.endswith(": passes by policy")
    assert all(result.passed for result in guards.values()), guards


def test_flag_detail_charts_the_failures_and_names_the_join_when_empty(
    openfeature_scrape: OpenFeatureScrape, tmp_path: Path
) -> None:
    from app.services.flag_detail import flag_detail_sources, load_flag_detail
    from queries.sources import Sources

    config = tmp_path / "feature_flags.yaml"
    config.write_text(textwrap.dedent(CONFIG).lstrip("\n"), encoding="utf-8")
    sources = flag_detail_sources(Sources(_source(openfeature_scrape)))
    at = openfeature_scrape.newest_scrape()
    snapshot = FlagSnapshot("production", load_config(config, "production"))
    judged = gather_guard_inputs(
        [_source(openfeature_scrape)],
        AuditLog(None, tmp_path / "journal.jsonl"),
        snapshot,
        "new_checkout",
        POLICY,
        at,
    )
    detail = load_flag_detail(sources, snapshot, "new_checkout", [], "15m", at, judged=judged)
    assert detail.source == "prometheus" and detail.notices == ()
    assert set(detail.variant_rates["variant"]) == {"on", "off", FAILED_VARIANT}
    assert not detail.error_rates.empty and detail.latency.empty
    # the exposure and the errors by variant are the guards' numbers over their window
    assert detail.gates is not None and detail.window == judged.window
    assert detail.gates.exposure.estimate == pytest.approx(0.25, abs=0.005)
    assert detail.gates.difference is None  # failures carry no variant here
    empty = load_flag_detail(
        sources, FlagSnapshot("qa", load_config(config)), "new_checkout", [], "15m", at
    )
    assert empty.variant_rates.empty
    assert empty.notices == (
        'prometheus: no series of feature_flag_evaluation_success_total for environment "qa"; '
        'looked for target_info{deployment_environment_name="qa"} joined on (job, instance) '
        "to feature_flag_evaluation_success_total.",
    )
