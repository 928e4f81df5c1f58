"""The flag detail's tables, built from a config written here: what each column reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from app.flags.loader import load_config
from app.services.flag_detail import (
    VariantErrors,
    dependencies_table,
    latency_in_ms,
    rules_table,
    variant_error_table,
)

CONFIG = """
version: "1"
flags:
  base:
    state: enabled
  half:
    state: rollout
    rollout: {percentage: 50}
  checkout:
    state: rollout
    rollout: {percentage: 10}
    targeting_rules:
      - {name: beta_users, condition: "user_type == 'beta'", variant: "on", priority: 10}
      - {name: admins, condition: "user_type == 'admin'", variant: "on", priority: 100}
    metadata: {dependencies: [base, half]}
"""


def _config(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def test_rules_read_in_the_order_they_are_tried(tmp_path):
    table = rules_table(_config(tmp_path).flags["checkout"])
    assert list(table.columns) == ["Priority", "Rule", "Condition", "Variant"]
    assert list(table["Rule"]) == ["admins", "beta_users"]
    assert list(table["Priority"]) == [100, 10]


def test_dependencies_show_their_rollout(tmp_path):
    config = _config(tmp_path)
    table = dependencies_table(config, config.flags["checkout"])
    assert table.values.tolist() == [["base", "100 %"], ["half", "50 %"]]


def test_latency_reads_in_milliseconds_with_named_quantiles():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pd.DataFrame(
        [(0.5, at, 0.0008), (0.99, at, 0.31), (0.9, at, 0.002)],
        columns=["quantile", "timestamp", "seconds"],
    )
    shown = latency_in_ms(frame)
    assert list(shown["quantile"]) == ["p50", "p99", "q0.9"]
    assert [round(v, 6) for v in shown["ms"]] == [0.8, 310.0, 2.0]


def test_errors_by_variant_read_as_percent_and_a_dash_without_evaluations():
    table = variant_error_table(
        (VariantErrors("on", 2500, 22), VariantErrors("off", 7500, 8), VariantErrors("x", 0, 0))
    )
    assert table.values.tolist() == [
        ["on", "2,500", "22", "0.88 %"],
        ["off", "7,500", "8", "0.11 %"],
        ["x", "0", "0", "–"],
    ]
