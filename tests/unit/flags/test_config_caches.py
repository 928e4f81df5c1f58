"""The loader's and the YAML backend's caches, shared by every Streamlit thread.

Many threads load configs of different content at once, so the bounded caches evict
while others read: no load may fail, and each must return its own file's content.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.flags.loader import load_config
from app.flags.yaml_backend import YamlFlagBackend

BASE = """
version: "1"
flags:
  main:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 10}
"""

THREADS = 8
ROUNDS = 150
#: the whole race is run this many times: one run alone does not always hit it
ATTEMPTS = 8


def _override(percentage: int) -> str:
    return f"flags:\n  main:\n    rollout: {{percentage: {percentage}}}\n"


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as possible so a check-then-read race shows up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _run_together(work: Callable[[int], None]) -> list[BaseException]:
    """Run `work(worker)` on THREADS threads started together, ATTEMPTS times; what
    they raised."""
    failures: list[BaseException] = []
    for _ in range(ATTEMPTS):
        failures.extend(_run_once(work))
    return failures


def _run_once(work: Callable[[int], None]) -> list[BaseException]:
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(worker: int) -> None:
        start.wait()
        try:
            work(worker)
        except BaseException as error:  # collected and asserted on
            failures.append(error)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.usefixtures("tiny_switch_interval")
def test_many_threads_loading_distinct_configs_each_get_their_own(tmp_path: Path) -> None:
    base = tmp_path / "flags.yaml"
    base.write_text(textwrap.dedent(BASE).lstrip("\n"), encoding="utf-8")
    wrong: list[tuple[int, float]] = []

    def work(worker: int) -> None:
        for round_ in range(ROUNDS):
            # over a hundred distinct contents: every cache has to evict while others read
            percentage = (worker * ROUNDS + round_) % 100
            config = load_config(base, "prod", override_text=_override(percentage))
            if config.flags["main"].percentage != percentage:
                wrong.append((percentage, config.flags["main"].percentage))

    failures = _run_together(work)
    assert failures == []
    assert wrong == []


@pytest.mark.usefixtures("tiny_switch_interval")
def test_many_threads_taking_snapshots_get_the_versions_of_their_own_config(
    tmp_path: Path,
) -> None:
    directories = []
    for index in range(THREADS * 6):
        directory = tmp_path / f"config-{index}"
        directory.mkdir()
        base = directory / "flags.yaml"
        base.write_text(textwrap.dedent(BASE).lstrip("\n"), encoding="utf-8")
        (directory / "flags_prod.yaml").write_text(_override(index), encoding="utf-8")
        directories.append(base)
    expected = {path: YamlFlagBackend(path).load("prod").versions["main"] for path in directories}
    assert len(set(expected.values())) == len(directories)
    wrong: list[Path] = []

    def work(worker: int) -> None:
        for round_ in range(ROUNDS):
            path = directories[(worker * 7 + round_) % len(directories)]
            snapshot = YamlFlagBackend(path).load("prod")
            if snapshot.versions["main"] != expected[path]:
                wrong.append(path)

    failures = _run_together(work)
    assert failures == []
    assert wrong == []


def test_a_config_equal_in_content_gets_the_same_versions_after_eviction(tmp_path: Path) -> None:
    """Versions follow content, not object identity: reloading after the caches were
    flushed by other content gives the same versions."""
    base = tmp_path / "flags.yaml"
    base.write_text(textwrap.dedent(BASE).lstrip("\n"), encoding="utf-8")
    backend = YamlFlagBackend(base)
    first = backend.load("prod").versions
    for percentage in range(100):
        load_config(base, "prod", override_text=_override(percentage))
    assert backend.load("prod").versions == first
