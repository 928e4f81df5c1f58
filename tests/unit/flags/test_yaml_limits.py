"""The limits of app/flags/yaml_limits.py refuse what they must and nothing a real
config needs (the hostile inputs themselves are in tests/security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.flags.loader import load_config
from app.flags.yaml_limits import MAX_BYTES, MAX_DEPTH, MAX_NODES, YamlRejected, check_text
from tests.bench.workloads import write_config


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_limit_is_accepted_one_more_is_refused() -> None:
    assert check_text(_nested(MAX_DEPTH)) == _nested(MAX_DEPTH)
    with pytest.raises(YamlRejected, match=f"limit of {MAX_DEPTH} levels") as refused:
        check_text("a: 1\nb:\n  " + _nested(MAX_DEPTH + 1))
    assert refused.value.line == 3


def test_a_small_anchor_may_be_repeated_thousands_of_times() -> None:
    text = "base: &rollout {percentage: 5, sticky: true}\nuses:\n" + "  - *rollout\n" * 5_000
    assert check_text(text) == text


def test_aliases_count_as_the_nodes_they_repeat() -> None:
    # A list of 1,000 scalars is 1,001 nodes; with the 1,005 other nodes, 996 aliases of it
    # make 998,001 nodes (under 1,000,000) and 1,000 make 1,002,005 (over).
    anchor = "a: &a [" + ", ".join(["x"] * 1_000) + "]\n"
    under = anchor + "b: [" + ", ".join(["*a"] * 996) + "]\n"
    over = anchor + "b: [" + ", ".join(["*a"] * 1_000) + "]\n"
    assert check_text(under) == under
    with pytest.raises(YamlRejected, match=f"{MAX_NODES:,} nodes"):
        check_text(over)


def test_a_leading_utf8_bom_is_dropped_and_the_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_bytes(b'\xef\xbb\xbfversion: "1"\nflags:\n  a: {state: enabled}\n')
    assert check_text('\ufeffversion: "1"\n') == 'version: "1"\n'
    assert list(load_config(path).flags) == ["a"]


def test_the_5000_flag_benchmark_config_is_well_within_the_limits(tmp_path: Path) -> None:
    text = write_config(tmp_path, 5_000).read_text()
    assert len(text.encode()) * 4 < MAX_BYTES
    assert check_text(text) == text


def test_a_text_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(YamlRejected, match=f"over the limit of {MAX_BYTES:,} bytes"):
        check_text("# " + "x" * MAX_BYTES)
