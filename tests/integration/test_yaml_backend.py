"""The yaml backend beyond the contract: it edits files people also edit by hand, and
services hot-reload them, so it must keep their comments and never leave half a file."""

from __future__ import annotations

import difflib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.flags.backend import FlagChange, FlagSnapshot, definition_version
from app.flags.loader import ConfigInvalid, load_config, load_derived
from app.flags.model import FlagConfig, FlagState
from app.flags.yaml_backend import YamlFlagBackend
from tests.support.bundled import copy_bundled_config

ROOT = Path(__file__).resolve().parents[2]
ENV = "production"
FLAG = "phase1_environment_configs"  # production: rollout at 5 %


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return copy_bundled_config(tmp_path)


def _set(
    backend: YamlFlagBackend, flag: str, percentage: float, environment: str = ENV
) -> FlagSnapshot:
    read = backend.load(environment)
    return backend.apply(
        environment, [FlagChange(flag, FlagState.ROLLOUT, percentage)], read.versions
    )


def _leftovers(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.name.endswith(".tmp") or path.name.startswith(".tmp-")
    )


def test_only_the_changed_value_changes_in_the_override_and_the_base_is_untouched(
    base: Path,
) -> None:
    override = base.with_name("feature_flags_production.yaml")
    before, base_bytes = override.read_text(), base.read_bytes()

    _set(YamlFlagBackend(base), FLAG, 7)

    after = override.read_text()
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    # The state is written too, explicitly, as the merged config already had it.
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        "-    rollout: {percentage: 5.0}",
        "+    state: rollout",
        "+    rollout: {percentage: 7}",
    ]
    assert "# Production overrides, deep-merged over feature_flags.yaml." in override.read_text()
    assert base.read_bytes() == base_bytes


def test_a_flag_the_override_lacks_is_added_keeping_blank_lines_and_comments(
    base: Path,
) -> None:
    override = base.with_name("feature_flags_staging.yaml")
    backend = YamlFlagBackend(base)

    read = backend.load("staging")
    backend.apply(
        "staging",
        [
            FlagChange("phase2_ml_model_health", FlagState.ROLLOUT, 12.5),
            FlagChange("ab_testing", FlagState.DISABLED, 0),
        ],
        read.versions,
    )

    text = override.read_text()
    assert (
        "  # The base file prepares a user_list rollout; staging switches it on.\n"
        "  phase2_ml_model_health:\n"
        "    state: rollout\n"
        "    rollout: {percentage: 12.5}\n"
        "\n"
        "  phase3_metrics_observability:\n"
        "    state: rollout\n"
        "  ab_testing:\n"
        "    state: disabled\n"
        "    rollout: {percentage: 0}\n"
    ) in text
    assert text.startswith("# Staging overrides, deep-merged over feature_flags.yaml.\n")
    snapshot = backend.load("staging")
    assert snapshot.flag("phase2_ml_model_health").percentage == 12.5
    assert snapshot.flag("ab_testing").state is FlagState.DISABLED


def test_an_environment_without_an_override_gets_one_with_a_header(base: Path) -> None:
    backend = YamlFlagBackend(base)
    assert "qa" not in backend.environments()
    assert backend.load("qa").config.flags == load_config(base).flags  # the base applies

    snapshot = _set(backend, "ab_testing", 40, environment="qa")

    created = base.with_name("feature_flags_qa.yaml")
    assert created.read_text().startswith("# qa overrides, deep-merged over feature_flags.yaml.")
    assert snapshot.flag("ab_testing").percentage == 40.0
    assert backend.environments() == ["production", "qa", "staging"]
    assert backend.history("qa") == []  # there was no previous version


def test_history_keeps_previous_versions_and_restore_brings_one_back(base: Path) -> None:
    override = base.with_name("feature_flags_production.yaml")
    original = override.read_bytes()
    backend = YamlFlagBackend(base, keep_versions=3)
    for percentage in (10, 20, 30, 40):
        _set(backend, FLAG, percentage)

    history = backend.history(ENV)
    assert len(history) == 3  # the oldest (the original file) was pruned
    kept = [load_config_with(base, path).flag(FLAG).percentage for path in history]
    assert kept == [30.0, 20.0, 10.0]  # newest first

    restored = backend.restore(ENV, history[-1])

    assert restored.flag(FLAG).percentage == 10.0
    assert backend.load(ENV) == restored
    assert backend.history(ENV)[0].read_bytes() != original  # the 40 % file is kept
    assert load_config_with(base, backend.history(ENV)[0]).flag(FLAG).percentage == 40.0
    assert _leftovers(base.parent) == []


def test_restore_refuses_another_environment_and_an_invalid_version(base: Path) -> None:
    backend = YamlFlagBackend(base)
    _set(backend, FLAG, 10)
    _set(backend, "phase2_health_checks", 10, environment="staging")
    override = base.with_name("feature_flags_production.yaml")
    current = override.read_bytes()

    with pytest.raises(ValueError, match="not a version of 'production'"):
        backend.restore(ENV, backend.history("staging")[0])

    broken = backend.history(ENV)[0]
    broken.write_text("flags:\n  ab_testing:\n    rollout: {percentage: 150}\n")
    with pytest.raises(ConfigInvalid) as invalid:
        backend.restore(ENV, broken)
    assert invalid.value.issues[0].file == override  # named as the real file, with its line
    assert invalid.value.issues[0].line == 3
    assert override.read_bytes() == current


def test_a_refused_write_leaves_no_temp_file_and_names_the_real_file(base: Path) -> None:
    backend = YamlFlagBackend(base)
    with pytest.raises(ConfigInvalid) as invalid:
        _set(backend, FLAG, 101)
    assert [issue.file.name for issue in invalid.value.issues] == ["feature_flags_production.yaml"]
    _set(backend, FLAG, 11)

    assert _leftovers(base.parent) == []
    assert sorted(path.name for path in base.parent.iterdir()) == [
        ".feature_flags.lock",
        ".history",
        "feature_flags.yaml",
        "feature_flags_production.yaml",
        "feature_flags_staging.yaml",
    ]


def load_config_with(base: Path, override_version: Path) -> FlagSnapshot:
    """The production snapshot a kept override version gives, read in a scratch copy."""
    scratch = override_version.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    copy_bundled_config(scratch)
    (scratch / "feature_flags_production.yaml").write_bytes(override_version.read_bytes())
    return YamlFlagBackend(scratch / base.name).load(ENV)


# A writer that imports once, then forks a child per run that rewrites the override in
# a tight loop (20 %, 30 %, 20 %, ...) until it is SIGKILLed: a fresh interpreter per
# kill would spend most of the test importing.
_CRASH_WRITER = """
import os, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from app.flags.backend import FlagChange
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend

backend = YamlFlagBackend(Path(sys.argv[1]))
print("ready", flush=True)
child = 0
for line in sys.stdin:
    if line.strip() == "fork":
        child = os.fork()
        if child == 0:
            try:
                step = 0
                while True:
                    read = backend.load("production")
                    percentage = (20, 30)[step % 2]
                    change = FlagChange({flag!r}, FlagState.ROLLOUT, percentage)
                    backend.apply("production", [change], read.versions)
                    step += 1
            finally:
                os._exit(1)  # an error, not a kill: the test sees the exit status
        print(child, flush=True)
    elif line.strip() == "reap":
        print(os.waitpid(child, 0)[1], flush=True)
"""


def test_a_writer_killed_at_random_moments_never_leaves_a_broken_file(
    base: Path, tmp_path: Path
) -> None:
    script = tmp_path / "crash_writer.py"
    script.write_text(_CRASH_WRITER.format(root=str(ROOT), flag=FLAG))
    backend = YamlFlagBackend(base)
    written = {5.0, 20.0, 30.0, 40.0}  # the original, the writer's two, ours after a kill
    seen: set[float] = set()
    left_temp_files = 0
    iterations = 40
    moments = random.Random(20260101)

    writer = subprocess.Popen(
        [sys.executable, str(script), str(base)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        for _ in range(iterations):
            writer.stdin.write("fork\n")
            writer.stdin.flush()
            child = int(writer.stdout.readline())
            # One apply takes tens of ms: kill anywhere from mid-first-write to a few in.
            threading.Event().wait(moments.uniform(0.005, 0.25))
            os.kill(child, signal.SIGKILL)
            writer.stdin.write("reap\n")
            writer.stdin.flush()
            status = int(writer.stdout.readline())
            assert os.WIFSIGNALED(status), "the writer failed on its own"
            assert os.WTERMSIG(status) == signal.SIGKILL

            config = load_config(base, ENV)  # parses and validates
            seen.add(config.flag(FLAG).percentage)
            assert config.flag(FLAG).percentage in written
            left_temp_files += bool(_leftovers(base.parent))

            # The dead writer's flock died with it: the next writer gets through.
            outcome: list[FlagSnapshot] = []
            next_writer = threading.Thread(
                target=lambda done=outcome: done.append(_set(backend, FLAG, 40))
            )
            next_writer.start()
            next_writer.join(timeout=10)
            assert not next_writer.is_alive(), "the next writer is blocked by a dead lock"
            assert outcome[0].flag(FLAG).percentage == 40.0
            assert _leftovers(base.parent) == []  # the dead writer's temp files are cleared
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)

    assert {20.0, 30.0} <= seen  # the writer really wrote between kills
    assert len(backend.history(ENV)) <= 50
    print(
        f"\ncrash test: {iterations} kills, percentages seen {sorted(seen)}, "
        f"{left_temp_files} kills left a temp file behind"
    )


_COUNTING_WRITER = """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from app.flags.backend import FlagChange, VersionConflict
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend

backend = YamlFlagBackend(Path(sys.argv[1]))
step = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # start together
applied = refused = 0
for _ in range(50):
    read = backend.load("production")
    decided = read.flag({flag!r}).rollout.percentage + step
    try:
        backend.apply("production", [FlagChange({flag!r}, FlagState.ROLLOUT, decided)],
                      {{{flag!r}: read.versions[{flag!r}]}})
    except VersionConflict:
        refused += 1
    else:
        applied += 1
print(json.dumps({{"applied": applied, "refused": refused}}), flush=True)
"""


def test_two_processes_deciding_concurrently_lose_no_update(base: Path, tmp_path: Path) -> None:
    backend = YamlFlagBackend(base)
    _set(backend, FLAG, 50)
    script = tmp_path / "counting_writer.py"
    script.write_text(_COUNTING_WRITER.format(root=str(ROOT), flag=FLAG))
    writers = {
        step: subprocess.Popen(
            [sys.executable, str(script), str(base), str(step)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for step in (+1, -1)
    }
    for writer in writers.values():
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    for writer in writers.values():
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    counts = {}
    for step, writer in writers.items():
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        counts[step] = json.loads(out)

    applied = {step: count["applied"] for step, count in counts.items()}
    refused = {step: count["refused"] for step, count in counts.items()}
    assert sum(applied.values()) + sum(refused.values()) == 100
    assert load_config(base, ENV).flag(FLAG).percentage == 50 + applied[+1] - applied[-1]
    print(f"\nyaml, two processes: applied {applied}, refused {refused}")


def _fresh(base: Path, override: Path) -> tuple[FlagConfig, dict[str, str]]:
    """The override file's config and versions by a full load: a trailing comment makes
    the text new to the loader's caches without changing its data."""
    return load_derived(
        base,
        ENV,
        lambda config: {key: definition_version(flag) for key, flag in config.flags.items()},
        override_text=override.read_text() + "# not cached\n",
    )


def test_a_targeted_edit_gives_the_snapshot_a_full_load_gives(base: Path) -> None:
    override = base.with_name("feature_flags_production.yaml")
    backend = YamlFlagBackend(base)
    before = override.read_text()
    read = backend.load(ENV)
    changes = [
        FlagChange(FLAG, FlagState.ROLLOUT, 10),
        FlagChange("ab_testing", FlagState.DISABLED, 0),
        FlagChange("phase2_ml_model_health", FlagState.ROLLOUT, 12.5),  # not in the file
    ]

    written = backend.apply(ENV, changes, read.versions)

    # The targeted edit ran: every line of the file is still there, in place.
    assert before.splitlines()[:6] == override.read_text().splitlines()[:6]
    config, versions = _fresh(base, override)
    assert written.config == config
    assert dict(written.versions) == versions
    assert backend.load(ENV) == written
    changed = {key for key in versions if versions[key] != read.versions[key]}
    assert changed == {FLAG, "ab_testing", "phase2_ml_model_health"}


def test_a_quoted_flow_entry_is_written_by_the_round_trip_keeping_comments(base: Path) -> None:
    override = base.with_name("feature_flags_production.yaml")
    text = override.read_text().replace(
        "  ab_testing:\n    rollout: {percentage: 25.0}\n",
        "  ab_testing: {state: 'rollout', rollout: {percentage: 25.0}}  # flow, by hand\n",
    )
    override.write_text(text)
    backend = YamlFlagBackend(base)

    written = _set(backend, "ab_testing", 50)

    after = override.read_text()
    assert (
        "  ab_testing: {state: 'rollout', rollout: {percentage: 50}}    # flow, by hand\n" in after
    )
    assert after.startswith("# Production overrides, deep-merged over feature_flags.yaml.\n")
    assert written.flag("ab_testing").percentage == 50.0
    assert written.config == _fresh(base, override)[0]


def test_an_edit_that_does_not_parse_as_intended_falls_back_to_the_round_trip(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault injected into the targeted editor (it writes 27 for a change to 50) is
    caught before anything is written: the round trip writes the change instead."""
    import app.flags.yaml_backend as yaml_backend

    override = base.with_name("feature_flags_production.yaml")
    wrong = override.read_text().replace("rollout: {percentage: 25.0}", "rollout: {percentage: 27}")
    monkeypatch.setattr(yaml_backend, "edit_flags", lambda _text, _changes: wrong)

    written = _set(YamlFlagBackend(base), "ab_testing", 50)

    assert written.flag("ab_testing").percentage == 50.0
    assert "percentage: 27" not in override.read_text()
    assert written.config == _fresh(base, override)[0]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["ab_testing", "canary_deployment", FLAG, "phase2_ml_model_health"]
                ),
                st.sampled_from([(FlagState.ROLLOUT, p) for p in (1, 10, 25, 50)])
                | st.just((FlagState.DISABLED, 0)),
            ),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_every_sequence_of_actions_gives_the_snapshot_a_full_load_gives(
    tmp_path_factory: pytest.TempPathFactory,
    actions: list[list[tuple[str, tuple[FlagState, float]]]],
) -> None:
    base = copy_bundled_config(tmp_path_factory.mktemp("config"))
    override = base.with_name("feature_flags_production.yaml")
    backend = YamlFlagBackend(base)
    comments = [line for line in override.read_text().splitlines() if "#" in line]
    for action in actions:
        read = backend.load(ENV)
        changes = [FlagChange(flag, state, percentage) for flag, (state, percentage) in action]
        written = backend.apply(ENV, changes, read.versions)
        config, versions = _fresh(base, override)
        assert written.config == config
        assert dict(written.versions) == versions
        for flag, (state, percentage) in dict(action).items():
            assert (written.flag(flag).state, written.flag(flag).percentage) == (state, percentage)
    assert [line for line in override.read_text().splitlines() if "#" in line] == comments
