"""One contract, every flag backend: yaml files, sql on SQLite, sql on PostgreSQL, and
a real Unleash server.

Each backend starts from the bundled config (the yaml one from a copy of the files,
the sql ones seeded with `import_config`, Unleash with one feature per flag), so the
numbers asserted are the bundled ones. Each subject says what its environments hold:
Unleash has no staging (its development holds the bundled staging values) and keeps a
flag's state and percentage only (`tests.support.unleash.unleash_view`).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.flags.backend import FlagBackend, FlagChange, UnknownFlag, VersionConflict
from app.flags.loader import BUNDLED_CONFIG, check_config, load_config
from app.flags.model import FlagConfig, FlagState
from app.flags.sql_backend import SqlFlagBackend
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import open_database
from app.metrics_db.schema import StoredConfig, StoredFlag
from app.unleash.api import UnleashApi
from app.unleash.backend import UnleashFlagBackend, file_lock
from tests.support.bundled import copy_bundled_config
from tests.support.unleash import (
    BUNDLED_AS_UNLEASH,
    UnleashSeed,
    bundled_metadata,
    seed_bundled_config,
    unleash_config,
)

ENV = "production"
FLAG = "ab_testing"  # production: rollout at 25 %
OTHER = "canary_deployment"  # production: rollout at 5 %


@dataclass
class Subject:
    backend: FlagBackend
    #: Everything the backend has persisted, to prove a refused change wrote nothing.
    stored: Callable[[], object]
    #: The environment a change in ENV must leave untouched.
    other: str = "staging"
    #: The config `load(environment)` must give before any change.
    expected: Callable[[str], FlagConfig] = lambda environment: load_config(
        BUNDLED_CONFIG, environment
    )


def _yaml_subject(directory: Path) -> Subject:
    base = copy_bundled_config(directory)

    def stored() -> object:
        return {
            str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and not path.name.endswith(".lock")
        }

    return Subject(YamlFlagBackend(base), stored)


def _sql_subject(engine: Engine) -> Subject:
    backend = SqlFlagBackend(engine)
    for environment in ("production", "staging"):
        # replace: the PostgreSQL database lives for the whole session.
        backend.import_config(environment, load_config(BUNDLED_CONFIG, environment), replace=True)

    def stored() -> object:
        with engine.connect() as connection:
            flags = connection.execute(select(StoredFlag.__table__).order_by(StoredFlag.id)).all()
            configs = connection.execute(
                select(StoredConfig.__table__).order_by(StoredConfig.environment)
            ).all()
        return [tuple(row) for row in flags], [tuple(row) for row in configs]

    return Subject(backend, stored)


def _unleash_subject(seed: UnleashSeed, directory: Path) -> Subject:
    seed_bundled_config(seed)
    server = seed.server
    backend = UnleashFlagBackend(
        UnleashApi(server.url, server.admin_token, 10),
        "default",
        bundled_metadata(directory / "metadata.yaml"),
        write_lock=lambda: file_lock(directory / ".unleash-writes.lock"),
    )

    def stored() -> object:
        return [
            seed.call(
                "POST",
                "/api/admin/features-batch/export",
                {"environment": environment, "project": "default"},
            )
            for environment in BUNDLED_AS_UNLEASH
        ]

    def expected(environment: str) -> FlagConfig:
        bundled = load_config(BUNDLED_CONFIG, BUNDLED_AS_UNLEASH[environment])
        return unleash_config(bundled, environment)

    return Subject(backend, stored, other="development", expected=expected)


@pytest.fixture(
    params=[
        "yaml",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("unleash", marks=pytest.mark.unleash),
    ],
)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "yaml":
        yield _yaml_subject(tmp_path)
        return
    if request.param == "unleash":
        yield _unleash_subject(request.getfixturevalue("unleash"), tmp_path)
        return
    url = (
        f"sqlite:///{tmp_path / 'metrics.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = open_database(url)
    try:
        yield _sql_subject(engine)
    finally:
        engine.dispose()


def test_load_returns_the_bundled_flags_with_a_version_each(subject: Subject) -> None:
    snapshot = subject.backend.load(ENV)

    assert snapshot.environment == ENV
    assert snapshot.config == subject.expected(ENV)
    assert snapshot.flag(FLAG).state is FlagState.ROLLOUT
    assert snapshot.flag(FLAG).percentage == 25.0
    assert snapshot.flag(OTHER).percentage == 5.0
    assert set(snapshot.versions) == set(snapshot.config.flags)
    assert all(snapshot.versions.values())
    assert ENV in subject.backend.environments()
    assert subject.other in subject.backend.environments()


def test_apply_sets_state_and_percentage_and_bumps_only_that_flag(subject: Subject) -> None:
    backend = subject.backend
    before = backend.load(ENV)

    after = backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], before.versions)

    assert after.flag(FLAG).percentage == 50.0
    assert backend.load(ENV) == after
    changed = {key for key in before.versions if before.versions[key] != after.versions[key]}
    assert changed == {FLAG}
    # Nothing else of the flag moved.
    assert after.flag(FLAG).variants == before.flag(FLAG).variants
    assert after.flag(FLAG).targeting_rules == before.flag(FLAG).targeting_rules
    # The other environment is untouched.
    assert backend.load(subject.other).config == subject.expected(subject.other)

    killed = backend.apply(ENV, [FlagChange(FLAG, FlagState.DISABLED, 0)], after.versions)
    assert killed.flag(FLAG).state is FlagState.DISABLED
    assert killed.flag(FLAG).rollout.percentage == 0.0
    assert killed.flag(FLAG).percentage == 0.0


def test_killing_every_rollout_flag_at_once_sets_each_and_bumps_only_those(
    subject: Subject,
) -> None:
    backend = subject.backend
    before = backend.load(ENV)
    rollout = sorted(
        key for key, flag in before.config.flags.items() if flag.state is FlagState.ROLLOUT
    )
    assert len(rollout) >= 5  # the bundled production config

    after = backend.apply(
        ENV, [FlagChange(key, FlagState.DISABLED, 0) for key in rollout], before.versions
    )

    assert [key for key in rollout if after.flag(key).state is FlagState.DISABLED] == rollout
    assert all(after.flag(key).rollout.percentage == 0.0 for key in rollout)
    assert {key for key in before.versions if before.versions[key] != after.versions[key]} == set(
        rollout
    )
    assert backend.load(ENV) == after


def test_a_stale_version_is_refused_with_the_fresh_state_and_nothing_written(
    subject: Subject,
) -> None:
    backend = subject.backend
    read = backend.load(ENV)
    backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], read.versions)
    stored = subject.stored()

    with pytest.raises(VersionConflict) as conflict:
        backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 10)], read.versions)

    assert conflict.value.flags == (FLAG,)
    assert conflict.value.current.flag(FLAG).percentage == 50.0
    assert conflict.value.current == backend.load(ENV)
    assert subject.stored() == stored


def test_a_missing_expected_version_is_refused(subject: Subject) -> None:
    stored = subject.stored()

    with pytest.raises(VersionConflict):
        subject.backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 10)], {})

    assert subject.stored() == stored


def test_an_unknown_flag_is_refused_and_nothing_written(subject: Subject) -> None:
    backend = subject.backend
    read = backend.load(ENV)
    stored = subject.stored()

    with pytest.raises(UnknownFlag) as unknown:
        backend.apply(
            ENV,
            [
                FlagChange(FLAG, FlagState.ROLLOUT, 50),
                FlagChange("no_such_flag", FlagState.ROLLOUT, 1),
            ],
            {**read.versions, "no_such_flag": "1"},
        )

    assert unknown.value.flag == "no_such_flag"
    assert subject.stored() == stored


@pytest.mark.parametrize("percentage", [150.0, -1.0, math.nan])
def test_an_invalid_result_is_refused_and_nothing_written(
    subject: Subject, percentage: float
) -> None:
    backend = subject.backend
    read = backend.load(ENV)
    stored = subject.stored()

    # ConfigInvalid is a ValueError.
    with pytest.raises(ValueError, match="percentage"):
        backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, percentage)], read.versions)

    assert subject.stored() == stored
    assert backend.load(ENV) == read


def test_one_stale_flag_refuses_the_whole_change(subject: Subject) -> None:
    backend = subject.backend
    read = backend.load(ENV)
    backend.apply(ENV, [FlagChange(OTHER, FlagState.ROLLOUT, 10)], read.versions)
    stored = subject.stored()
    both = [FlagChange(FLAG, FlagState.ROLLOUT, 50), FlagChange(OTHER, FlagState.ROLLOUT, 25)]

    with pytest.raises(VersionConflict) as conflict:
        backend.apply(ENV, both, read.versions)

    assert conflict.value.flags == (OTHER,)
    assert subject.stored() == stored
    current = backend.load(ENV)
    assert current.flag(FLAG).percentage == 25.0  # the fresh flag was not written either
    assert current.flag(OTHER).percentage == 10.0

    # Every mismatch is listed, not just the first.
    backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 30)], current.versions)
    with pytest.raises(VersionConflict) as conflict:
        backend.apply(ENV, both, read.versions)
    assert conflict.value.flags == (FLAG, OTHER)


def test_concurrent_read_decide_write_loses_no_update(subject: Subject) -> None:
    """Two threads, 50 attempts each: one advances the flag by 1 %, the other takes it
    back by 1 %, each deciding on what it read. Every attempt is applied or refused,
    and the applied ones add up exactly."""
    backend = subject.backend
    start = backend.load(ENV)
    backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], start.versions)
    applied = {+1: 0, -1: 0}
    refused = {+1: 0, -1: 0}
    failures: list[BaseException] = []

    def attempts(step: int) -> None:
        thinking = random.Random(step)
        try:
            for _ in range(50):
                snapshot = backend.load(ENV)
                decided = snapshot.flag(FLAG).rollout.percentage + step
                # A moment to decide, so that the two threads interleave both ways.
                time.sleep(thinking.uniform(0, 0.08))
                try:
                    backend.apply(
                        ENV,
                        [FlagChange(FLAG, FlagState.ROLLOUT, decided)],
                        {FLAG: snapshot.versions[FLAG]},
                    )
                except VersionConflict:
                    refused[step] += 1
                else:
                    applied[step] += 1
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=attempts, args=(step,)) for step in (+1, -1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(applied.values()) + sum(refused.values()) == 100
    final = backend.load(ENV)  # validates
    assert final.flag(FLAG).rollout.percentage == 50 + applied[+1] - applied[-1]
    if isinstance(backend, YamlFlagBackend):
        assert check_config(backend.path) == []
    print(f"\n{subject.backend.name} concurrency: applied {applied}, refused {refused}")
