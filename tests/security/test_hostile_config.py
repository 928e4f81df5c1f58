"""Hostile flag configs: each is refused (or read as documented) with a clear message,
by `check-config`, the YAML backend and hot reload alike, and nothing is written.

`check-config` exits 1 for an invalid config and 0 for a valid one (app/cli/commands.py);
the limits are in app/flags/yaml_limits.py.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.cli import main
from app.flags.backend import FlagChange
from app.flags.evaluator import CONFIG_RELOAD_ERRORS, EvaluationMetrics, FlagEvaluator
from app.flags.loader import ConfigInvalid
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend
from app.flags.yaml_limits import MAX_BYTES, MAX_DEPTH, MAX_NODES
from tests.support.hostile_yaml import NESTING, block_nesting, fifty_megabytes, flow_nesting, laughs

BASE = """\
version: "1"
global: {default_rollout_percentage: 10}
flags:
  main:
    state: rollout
    variants: {on: true, off: false}
    rollout: {strategy: percentage, percentage: 10}
    targeting_rules:
      - {name: staff, condition: "user_type == 'staff'", variant: on, priority: 1}
    metadata: {phase: 1, description: "the main flag"}
"""
OVERRIDE = "flags:\n  main:\n    rollout: {percentage: 20}\n"

Content = str | bytes | Callable[[], bytes]


def flag(body: str, key: str = "main") -> str:
    """A config whose one flag has `body` (inline YAML mapping items)."""
    return f'version: "1"\nflags:\n  {key}:\n    {body}\n'


def binary() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + random.Random(9).randbytes(4096)


@dataclass(frozen=True)
class Case:
    content: Content
    expected: tuple[str, ...]  # each appears in check-config's output
    code: int = 1
    override: bool = False  # the content is the production override, the base is valid


CASES: dict[str, Case] = {
    # alias bombs: refused while counting, before anything is expanded
    "aliases_lists_9x9": Case(laughs(), (f"limit of {MAX_NODES:,} nodes", "alias bomb")),
    "aliases_mappings_9x9": Case(laughs(mapping=True), (f"limit of {MAX_NODES:,} nodes",)),
    "aliases_long_chain_2x25": Case(laughs(25, 2), (f"limit of {MAX_NODES:,} nodes",)),
    "aliases_in_a_flag_variant": Case(
        laughs() + flag("state: enabled\n    variants: {on: *a8, off: false}"),
        ("alias bomb",),
    ),
    "aliases_in_an_override": Case(laughs(), ("alias bomb", "_production.yaml:"), override=True),
    "alias_recursive_list": Case('version: "1"\nflags: &a [*a]\n', ("recursive",)),
    "alias_recursive_mapping": Case('version: "1"\nflags: &f {main: *f}\n', ("recursive",)),
    # deep nesting: refused at the first level over the limit, never composed
    "nesting_flow_lists": Case(flow_nesting(), (f"limit of {MAX_DEPTH} levels",)),
    "nesting_flow_mappings": Case(
        "flags:\n  " + "a: {" * NESTING + "b: x" + "}" * NESTING + "\n",
        (f"limit of {MAX_DEPTH} levels",),
    ),
    "nesting_block_sequences": Case(block_nesting(), (f"limit of {MAX_DEPTH} levels",)),
    "nesting_block_mappings": Case(
        "flags:\n" + "".join(" " * (i + 1) + "k:\n" for i in range(200)) + " " * 201 + "1\n",
        (f"limit of {MAX_DEPTH} levels",),
    ),
    "nesting_block_then_flow": Case(
        "flags:\n" + "".join(" " * (i + 1) + "k:\n" for i in range(40)) + " " * 41 + "[" * 500,
        (f"limit of {MAX_DEPTH} levels",),
    ),
    "nesting_in_an_override": Case(
        "flags: " + "{a: " * NESTING + "1" + "}" * NESTING, ("levels",), override=True
    ),
    # size: refused after reading the limit, not the file
    "fifty_megabytes": Case(fifty_megabytes, (f"over the limit of {MAX_BYTES:,} bytes",)),
    "fifty_megabyte_override": Case(fifty_megabytes, ("bytes",), override=True),
    # encodings and characters
    "binary": Case(binary, ("not UTF-8 text: byte 0x89",)),
    "nul_bytes": Case(BASE.replace("the main flag", "the\0main"), ("a NUL byte",)),
    "escape_character": Case(BASE.replace("the main flag", "\x1b[2J"), ("an escape character",)),
    "invalid_utf8": Case(BASE.encode().replace(b"main flag", b"caf\xe9"), ("byte 0xe9",)),
    "utf16_with_bom": Case(BASE.encode("utf-16"), ("not UTF-8 text: byte 0xff",)),
    "utf8_bom_is_accepted": Case("\ufeff" + BASE, ("valid",), code=0),
    "tab_indentation": Case(BASE.replace("    state:", "\tstate:"), ("a tab",)),
    "python_tag": Case(
        flag('state: enabled\n    variants: {on: !!python/object/apply:os.system ["id"]}'),
        ("YAML value error", "python/object"),
    ),
    # duplicate keys at every level
    "duplicate_top_level": Case(BASE + 'version: "2"\n', ("duplicate key 'version'",)),
    "duplicate_flag": Case(BASE + "  main:\n    state: enabled\n", ("duplicate key 'main'",)),
    "duplicate_in_flag": Case(flag("state: enabled\n    state: disabled"), ("key 'state'",)),
    "duplicate_in_rollout": Case(
        flag("state: rollout\n    rollout: {percentage: 5, percentage: 90}"),
        ("duplicate key 'percentage'",),
    ),
    "duplicate_in_rule": Case(
        BASE.replace("name: staff,", "name: staff, name: all,"), ("duplicate key 'name'",)
    ),
    "duplicate_in_metadata": Case(
        BASE.replace("phase: 1,", "phase: 1, phase: 6,"), ("duplicate key 'phase'",)
    ),
    "duplicate_in_override": Case(OVERRIDE + "flags: {}\n", ("key 'flags'",), override=True),
    # unknown fields at every level
    "unknown_top_level": Case(BASE + "colour: red\n", ("colour", "Extra inputs")),
    "unknown_in_global": Case(BASE.replace("{default_", "{colour: 1, default_"), ("colour",)),
    "unknown_in_flag": Case(flag("state: enabled\n    colour: red"), ("main: colour",)),
    "unknown_in_rollout": Case(BASE.replace("percentage: 10}", "percent: 10}"), ("percent",)),
    "unknown_in_rule": Case(BASE.replace("priority: 1}", "prio: 1}"), ("prio",)),
    "unknown_in_metadata": Case(BASE.replace("phase: 1,", "team: x,"), ("metadata.team",)),
    "unknown_in_override": Case("flags:\n  main:\n    colour: red\n", ("colour",), override=True),
    # absurd numbers
    "percentage_nan": Case(BASE.replace("percentage: 10}", "percentage: .nan}"), ("got nan",)),
    "percentage_inf": Case(BASE.replace("percentage: 10}", "percentage: .inf}"), ("got inf",)),
    "percentage_1e309": Case(
        BASE.replace("percentage: 10}", "percentage: 1e309}"), ("(got '1e309')",)
    ),
    "percentage_huge_int": Case(
        BASE.replace("percentage: 10}", f"percentage: {10**30}}}"), ("less than or equal to 100",)
    ),
    "percentage_minus_zero_is_zero": Case(
        BASE.replace("percentage: 10}", "percentage: -0}"), ("valid",), code=0
    ),
    "percentage_1e-400_is_zero": Case(
        BASE.replace("percentage: 10}", "percentage: 1e-400}"), ("valid",), code=0
    ),
    "priority_of_5000_digits": Case(
        BASE.replace("priority: 1}", f"priority: {'9' * 5000}}}"), ("YAML value error", "4300")
    ),
    "phase_huge_int": Case(BASE.replace("phase: 1,", f"phase: {10**40},"), ("less than or equal",)),
    "impossible_date": Case(
        flag("state: rollout\n    rollout: {strategy: gradual, schedule: [{at: 2026-13-45}]}"),
        ("YAML value error", "2026-13-45"),
    ),
    # flag keys
    "key_with_quotes": Case(flag("state: enabled", key='"it\'s \\"x\\""'), ("a flag key is",)),
    "key_with_braces": Case(flag("state: enabled", key='"{x}"'), ("'{x}'", "a flag key is")),
    "key_with_newline": Case(flag("state: enabled", key='"a\\nb"'), ("'a\\nb'", "a flag key")),
    "key_with_cyrillic_a": Case(flag("state: enabled", key="m\u0430in"), ("'m\\u0430in'", "ASCII")),
    "key_of_10000_characters": Case(  # an explicit key: a plain one stops at 1,024
        f'version: "1"\nflags:\n  ? {"k" * 10_000}\n  : {{state: enabled}}\n', ("10000 characters",)
    ),
    "key_with_terminal_escape": Case(flag("state: enabled", key='"\\e[31mred"'), ("\\x1b",)),
    # the shape of the file
    "empty_file": Case("", ("found an empty file",)),
    "only_comments": Case("# nothing here\n", ("found an empty file",)),
    "a_scalar": Case("just a string\n", ("top level must be a mapping, found a str",)),
    "a_list": Case("- version: 1\n", ("top level must be a mapping, found a list",)),
    "override_is_a_list": Case("- main\n", ("found a list",), override=True),
}

#: Files that look like an override of an environment whose name is no name.
MISNAMED_OVERRIDES = [
    "feature_flags_prod..yaml",
    "feature_flags_.yaml",
    "feature_flags_..%2F..%2Fetc.yaml",
    "feature_flags_-rf.yaml",
    "feature_flags_prod uction.yaml",
]


def _bytes(content: Content) -> bytes:
    if callable(content):
        return content()
    return content.encode() if isinstance(content, str) else content


def _write(directory: Path, case: Case) -> Path:
    base = directory / "feature_flags.yaml"
    if case.override:
        base.write_text(BASE)
        (directory / "feature_flags_production.yaml").write_bytes(_bytes(case.content))
    else:
        base.write_bytes(_bytes(case.content))
    return base


def _fingerprint(directory: Path) -> dict[str, str]:
    """Every file below `directory` (hidden ones and history included) and its hash."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out + err


def _assert_clear(output: str) -> None:
    """No traceback, and every line short enough to read (names are escaped and cut)."""
    assert "Traceback" not in output
    assert all(len(line) < 500 for line in output.splitlines()), output[:2000]


def test_there_are_at_least_sixty_hostile_configs() -> None:
    assert len(CASES) + len(MISNAMED_OVERRIDES) >= 60


@pytest.mark.parametrize("name", CASES)
def test_check_config_refuses_clearly_and_writes_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_rollout_environment: None
) -> None:
    case = CASES[name]
    base = _write(tmp_path, case)
    before = _fingerprint(tmp_path)
    code, output = _check_config(base, capsys)
    assert code == case.code, output[:2000]
    for expected in case.expected:
        assert expected in output, output[:2000]
    if case.code == 1:
        assert "nothing was written" in output
        wrong_file = "feature_flags.yaml:" if case.override else "_production.yaml:"
        assert wrong_file not in output, output[:2000]
    _assert_clear(output)
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("file_name", MISNAMED_OVERRIDES)
def test_check_config_names_an_override_file_that_names_no_environment(
    file_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_rollout_environment: None
) -> None:
    base = tmp_path / "feature_flags.yaml"
    base.write_text(BASE)
    (tmp_path / file_name).write_text(OVERRIDE)
    before = _fingerprint(tmp_path)
    code, output = _check_config(base, capsys)
    assert code == 1
    assert f"{tmp_path / file_name}: ignored:" in output
    assert "is not an environment name" in output
    _assert_clear(output)
    assert _fingerprint(tmp_path) == before


#: Hostile override files for the YAML backend and hot reload: name -> (content, expected).
OVERRIDES: dict[str, tuple[Content, str]] = {
    "aliases": (laughs(), "alias bomb"),
    "recursive_alias": ("flags: &f {main: *f}\n", "recursive"),
    "nesting_flow": (flow_nesting(), "levels"),
    "nesting_block": (block_nesting(), "levels"),
    "fifty_megabytes": (fifty_megabytes, f"limit of {MAX_BYTES:,} bytes"),
    "binary": (binary, "not UTF-8"),
    "nul_bytes": (OVERRIDE.replace("20}", "20}\0"), "NUL"),
    "duplicate_key": ("flags:\n  main:\n    rollout: {percentage: 20, percentage: 90}\n", "dupl"),
    "huge_int": (OVERRIDE.replace("20}", f"{'9' * 5000}}}"), "4300"),
    "cyrillic_key": ("flags:\n  m\u0430in: {state: enabled}\n", "a flag key is"),
}


def _backend_with_history(directory: Path) -> tuple[YamlFlagBackend, dict[str, str]]:
    """A YAML backend after one good advance (so its lock and history files exist)."""
    (directory / "feature_flags.yaml").write_text(BASE)
    (directory / "feature_flags_production.yaml").write_text(OVERRIDE)
    backend = YamlFlagBackend(directory / "feature_flags.yaml")
    snapshot = backend.load("production")
    change = FlagChange("main", FlagState.ROLLOUT, 25)
    snapshot = backend.apply("production", [change], snapshot.versions)
    assert snapshot.config.flags["main"].rollout.percentage == 25
    return backend, dict(snapshot.versions)


@pytest.mark.parametrize("name", OVERRIDES)
def test_yaml_backend_refuses_an_advance_over_a_hostile_override(name: str, tmp_path: Path) -> None:
    backend, versions = _backend_with_history(tmp_path)
    content, expected = OVERRIDES[name]
    (tmp_path / "feature_flags_production.yaml").write_bytes(_bytes(content))
    before = _fingerprint(tmp_path)
    with pytest.raises(ConfigInvalid) as refused:
        backend.apply("production", [FlagChange("main", FlagState.ROLLOUT, 50)], versions)
    assert expected in str(refused.value)
    assert "feature_flags_production.yaml" in str(refused.value)
    _assert_clear(str(refused.value))
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("name", OVERRIDES)
def test_yaml_backend_refuses_to_restore_a_hostile_version(name: str, tmp_path: Path) -> None:
    backend, _ = _backend_with_history(tmp_path)
    content, expected = OVERRIDES[name]
    (kept,) = backend.history("production")
    kept.write_bytes(_bytes(content))  # a history file edited by hand, or corrupted
    before = _fingerprint(tmp_path)
    with pytest.raises(ConfigInvalid) as refused:
        backend.restore("production", kept)
    assert expected in str(refused.value)
    _assert_clear(str(refused.value))
    assert _fingerprint(tmp_path) == before
    assert backend.load("production").config.flags["main"].rollout.percentage == 25


@pytest.mark.parametrize("name", OVERRIDES)
def test_hot_reload_keeps_the_last_good_config_and_reports_the_error(
    name: str, tmp_path: Path
) -> None:
    base = tmp_path / "feature_flags.yaml"
    base.write_text(BASE)
    override = tmp_path / "feature_flags_production.yaml"
    override.write_text(OVERRIDE)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(base, "production", EvaluationMetrics(registry))
    content, expected = OVERRIDES[name]
    override.write_bytes(_bytes(content))
    before = _fingerprint(tmp_path)

    assert evaluator.maybe_reload() is False
    assert evaluator.last_error is not None
    assert expected in str(evaluator.last_error)
    _assert_clear(str(evaluator.last_error))
    assert evaluator.config.flags["main"].rollout.percentage == 20
    errors = registry.get_sample_value(CONFIG_RELOAD_ERRORS, {"environment": "production"})
    assert errors == 1
    assert _fingerprint(tmp_path) == before
