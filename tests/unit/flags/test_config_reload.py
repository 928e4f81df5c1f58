"""Hot reload does only the work a change needs, and still publishes every change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.flags.evaluator import EvaluationMetrics, FlagEvaluator
from app.flags.loader import ConfigInvalid, load_config
from tests.bench.workloads import write_config

GAUGE = "feature_flag_rollout_percentage"


def _override(base: Path, text: str, tick: int) -> None:
    override = base.with_name("feature_flags_production.yaml")
    override.write_text(text)
    stat = override.stat()  # a distinct mtime even within the file system's granularity
    os.utime(override, ns=(stat.st_atime_ns, stat.st_mtime_ns + tick * 10**9))


def test_a_reload_republishes_the_changed_flag_and_reuses_the_others(tmp_path: Path) -> None:
    base = write_config(tmp_path, 50)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(base, "production", EvaluationMetrics(registry))
    before = evaluator.config

    _override(base, "flags: {bench_flag_00003: {rollout: {percentage: 75}}}\n", 1)
    assert evaluator.maybe_reload() is True
    after = evaluator.config

    def gauge(key: str) -> float | None:
        return registry.get_sample_value(GAUGE, {"flag": key, "environment": "production"})

    assert gauge("bench_flag_00003") == 75.0
    assert gauge("bench_flag_00004") == 25.0
    assert after.flags["bench_flag_00003"].rollout.percentage == 75.0
    assert after.flags["bench_flag_00004"] is before.flags["bench_flag_00004"]
    assert after.flags["bench_flag_00003"] is not before.flags["bench_flag_00003"]
    assert after.loaded_version != before.loaded_version

    _override(base, "flags: {}\n", 2)
    assert evaluator.maybe_reload() is True
    assert gauge("bench_flag_00003") == 25.0
    assert evaluator.config.loaded_version == before.loaded_version


def test_a_flag_reused_from_the_cache_is_still_checked_against_the_config(
    tmp_path: Path,
) -> None:
    """An unchanged flag (`a`) skips its own validation, not the config's: the flag the
    override breaks (`b`) is reported at its line in the override."""
    base = tmp_path / "feature_flags.yaml"
    base.write_text(
        'version: "1"\nflags:\n  a: {state: enabled, metadata: {dependencies: [b]}}\n'
        "  b: {state: enabled}\n"
    )
    assert list(load_config(base, "production").flags) == ["a", "b"]
    (tmp_path / "feature_flags_production.yaml").write_text("flags: {b: not-a-mapping}\n")
    with pytest.raises(ConfigInvalid) as refused:
        load_config(base, "production")
    assert "feature_flags_production.yaml:1: b:" in str(refused.value)
