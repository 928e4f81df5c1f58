"""The unleash backend's local metadata file: read within the YAML limits, every problem
a ConfigInvalid naming the file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from app.flags.loader import ConfigInvalid
from app.unleash.metadata import load_metadata

GOOD = """\
phases:
  start: 2026-11-23
  list:
    - {number: 1, name: "Configuration Externalization", planned_week: 1}
    - {number: 2, name: "Health Check Implementation", planned_week: 2}
safety_flags: [rollback_mechanism]
rollout_steps: [5, 25, 100]
flags:
  f1: {phase: 1, owner: platform-team, dependencies: [f0], description: "first"}
"""


def test_the_file_gives_the_plan_settings_and_per_flag_metadata(tmp_path: Path) -> None:
    path = tmp_path / "meta.yaml"
    path.write_text(GOOD)

    metadata = load_metadata(path)

    assert [p.number for p in metadata.phase_list] == [1, 2]
    assert metadata.phases_start == date(2026, 11, 23)
    settings = metadata.global_settings()
    assert settings.safety_flags == ("rollback_mechanism",)
    assert settings.rollout_steps == (5, 25, 100)
    assert metadata.flags["f1"].owner == "platform-team"
    assert metadata.flags["f1"].dependencies == ("f0",)
    assert load_metadata(None).flags == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flags: {f1: {phase: 9}}\n", "flags.f1.phase"),
        ("rollout_steps: [50, 10]\n", "rollout_steps"),
        ("colour: blue\n", "colour"),
        ("flags: [\n", "not valid YAML"),
        ("a: &a [*a]\n", "recursive"),
        ("x: \x00\n", "NUL"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "meta.yaml"
    path.write_text(text)

    with pytest.raises(ConfigInvalid, match=message) as refused:
        load_metadata(path)

    assert str(path) in str(refused.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="cannot read it"):
        load_metadata(tmp_path / "absent.yaml")
