"""Services read flags from the `sql` backend (issue 23): the reference evaluator and the
demo simulator over the metrics database, on SQLite and on a real PostgreSQL.

A change made by the CLI in a process of its own reaches the evaluator at its next
reload, is evaluated at the new percentage, and the config version the instances then
report is the one the propagation guard expects.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from app.demo.simulator import ENVIRONMENTS, INSTANCES, Workload
from app.flags.backend import FlagChange
from app.flags.evaluator import EvaluationContext, EvaluationMetrics, FlagEvaluator, bucket
from app.flags.loader import BUNDLED_CONFIG, ConfigInvalid, load_config
from app.flags.model import FlagState
from app.flags.sql_backend import SqlFlagBackend
from app.metrics_db.database import open_database
from app.metrics_db.schema import InstanceReport, StoredFlag
from app.runtime import EMPTY_SQL_BACKEND
from queries.source import SourceUnavailable
from tests.conftest import fresh_postgres_database
from tests.support.bundled import copy_bundled_config
from tests.support.cli_process import ROOT, cli_environment, run_cli
from tests.support.servers import free_port
from tests.support.tcp_proxy import TcpProxy

ENV = "production"
FLAG = "ab_testing"  # production: rollout at 25 %, sticky
USERS = [f"user-{n}" for n in range(2000)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own: SQLite in a temp dir or one on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metrics.db'}"
        return
    with fresh_postgres_database("rollout_sqlflags") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _seeded(engine: Engine) -> SqlFlagBackend:
    backend = SqlFlagBackend(engine)
    for environment in ENVIRONMENTS:
        backend.import_config(environment, load_config(BUNDLED_CONFIG, environment))
    return backend


def _treated(evaluator: FlagEvaluator) -> int:
    """How many of USERS get the flag's rollout variant."""
    variant = evaluator.config.flag(FLAG).rollout.variant
    return sum(
        evaluator.evaluate(FLAG, EvaluationContext(user)).variant == variant for user in USERS
    )


def _loaded_versions(registry: CollectorRegistry) -> list[str]:
    """The `config_version` labels of the config-info gauge: what Prometheus scrapes."""
    return [
        sample.labels["config_version"]
        for metric in registry.collect()
        if metric.name == "feature_flag_config_info"
        for sample in metric.samples
        if sample.labels["environment"] == ENV and sample.value == 1
    ]


def _propagation(env: dict[str, str]) -> dict[str, Any]:
    """The propagation guard of a dry-run advance of FLAG, as the CLI reports it."""
    done = run_cli(
        env,
        *("advance", FLAG, "--env", ENV, "--reason", "look", "--actor", "ops"),
        *("--dry-run", "--json"),
    )
    assert done.returncode in (0, 1), done.stderr
    guards = {guard["name"]: guard for guard in json.loads(done.stdout)["guards"]}
    return guards["propagation"]


def test_a_cli_advance_reaches_the_simulated_instances_and_the_propagation_guard_passes(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    backend = _seeded(engine)
    registry = CollectorRegistry()
    workload = Workload(backend, registry, seed=3)  # the simulator over the sql backend
    simulated = workload.evaluators[ENV]
    workload.tick(1.0, datetime.now(UTC))
    workload.report_instances(engine, datetime.now(UTC))
    env = cli_environment(
        tmp_path / "state",
        database_url,
        "ops",
        ROLLOUT_FLAG_BACKEND="sql",
        ROLLOUT_ROLES=json.dumps({"ops": "admin"}),
    )
    before = backend.load(ENV).config.loaded_version
    assert simulated.config.loaded_version == before

    done = run_cli(
        env,
        *("advance", FLAG, "--env", ENV, "--to", "50", "--reason", "ramp", "--actor", "ops"),
        *("--override-guards", "--json"),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] is True
    wanted = backend.load(ENV).config.loaded_version
    assert wanted != before

    # Until they reload, the instances still report the old version: the guard waits.
    workload.report_instances(engine, datetime.now(UTC))
    waiting = _propagation(env)
    assert (waiting["passed"], waiting["detail"]) == (
        False,
        f"0 of 3 instances on {wanted}; behind: {', '.join(INSTANCES)}",
    )

    deadline = time.monotonic() + 30  # the reload interval is 1 s
    while simulated.config.flag(FLAG).percentage != 50 and time.monotonic() < deadline:
        workload.tick(0.1, datetime.now(UTC))
        time.sleep(0.1)
    assert simulated.config.flag(FLAG).percentage == 50.0
    assert simulated.config.loaded_version == wanted
    assert _loaded_versions(registry) == [wanted]
    assert (
        registry.get_sample_value(
            "feature_flag_rollout_percentage", {"flag": FLAG, "environment": ENV}
        )
        == 50.0
    )

    workload.report_instances(engine, datetime.now(UTC))
    passed = _propagation(env)
    assert (passed["passed"], passed["detail"]) == (True, f"3 of 3 instances on {wanted}")


def test_the_evaluator_reloads_a_written_change_and_evaluates_at_the_new_percentage(
    engine: Engine,
) -> None:
    backend = _seeded(engine)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(backend, ENV, EvaluationMetrics(registry), reload_interval_seconds=0)
    assert evaluator.reload_interval_seconds == 0
    at_25 = sum(bucket(FLAG, user) < 25 for user in USERS)
    assert _treated(evaluator) == at_25
    assert evaluator.maybe_reload() is False  # nothing changed: nothing loaded

    snapshot = backend.load(ENV)
    backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], snapshot.versions)
    assert evaluator.maybe_reload() is True
    at_50 = sum(bucket(FLAG, user) < 50 for user in USERS)
    assert _treated(evaluator) == at_50
    assert at_50 > at_25
    assert _loaded_versions(registry) == [backend.load(ENV).config.loaded_version]

    # The other environment's writes are not this evaluator's change.
    staging = backend.load("staging")
    backend.apply("staging", [FlagChange(FLAG, FlagState.DISABLED, 0)], staging.versions)
    assert evaluator.maybe_reload() is False


def test_the_database_is_asked_at_most_once_per_reload_interval(engine: Engine) -> None:
    backend = _seeded(engine)
    evaluator = FlagEvaluator(backend, ENV)
    assert evaluator.reload_interval_seconds == 1.0  # the default for a backend
    lazy = FlagEvaluator(backend, ENV, reload_interval_seconds=3600)
    snapshot = backend.load(ENV)
    backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], snapshot.versions)
    assert lazy.maybe_reload() is False
    assert lazy.config.flag(FLAG).percentage == 25.0


def test_an_invalid_stored_flag_keeps_the_previous_config_and_is_reported_once(
    engine: Engine,
) -> None:
    backend = _seeded(engine)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(backend, ENV, EvaluationMetrics(registry), reload_interval_seconds=0)
    definition = dict(backend.load(ENV).config.flag(FLAG).model_dump(mode="json", by_alias=True))
    definition.pop("key")
    broken = {**definition, "state": "rolout"}
    with engine.begin() as connection:  # a hand edit in the database, as psql would
        connection.execute(
            update(StoredFlag)
            .where(StoredFlag.environment == ENV, StoredFlag.flag == FLAG)
            .values(definition=broken, version=StoredFlag.version + 1)
        )
    assert evaluator.maybe_reload() is False
    assert isinstance(evaluator.last_error, ConfigInvalid)
    assert str(evaluator.last_error).startswith(f"sql/{ENV}: {FLAG}: state: ")
    assert evaluator.maybe_reload() is False  # reported once, not on every poll
    errors = {"environment": ENV}
    assert registry.get_sample_value("feature_flag_config_reload_errors_total", errors) == 1.0
    assert evaluator.config.flag(FLAG).percentage == 25.0
    assert _treated(evaluator) == sum(bucket(FLAG, user) < 25 for user in USERS)

    with engine.begin() as connection:
        connection.execute(
            update(StoredFlag)
            .where(StoredFlag.environment == ENV, StoredFlag.flag == FLAG)
            .values(
                definition={**definition, "rollout": {**definition["rollout"], "percentage": 5}},
                version=StoredFlag.version + 1,
            )
        )
    assert evaluator.maybe_reload() is True
    assert evaluator.last_error is None
    assert evaluator.config.flag(FLAG).percentage == 5.0


def test_an_empty_database_evaluates_nothing_until_flags_are_imported(engine: Engine) -> None:
    """A service started before the dashboard imported the flags picks them up later."""
    backend = SqlFlagBackend(engine)
    registry = CollectorRegistry()
    evaluator = FlagEvaluator(backend, ENV, EvaluationMetrics(registry), reload_interval_seconds=0)
    assert evaluator.config.flags == {}
    assert evaluator.evaluate(FLAG, EvaluationContext("u")).error_type == "flag_not_found"
    backend.import_config(ENV, load_config(BUNDLED_CONFIG, ENV))
    assert evaluator.maybe_reload() is True
    assert evaluator.config.flag(FLAG).percentage == 25.0
    assert _loaded_versions(registry) == [backend.load(ENV).config.loaded_version]


@pytest.mark.postgres
def test_a_database_outage_keeps_the_config_and_is_counted_until_it_answers() -> None:
    with fresh_postgres_database("rollout_sqlflags") as url:
        proxy = TcpProxy(("127.0.0.1", 5432))
        engine = open_database(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        try:
            backend = _seeded(engine)
            registry = CollectorRegistry()
            evaluator = FlagEvaluator(
                backend, ENV, EvaluationMetrics(registry), reload_interval_seconds=0
            )
            proxy.cut()
            assert evaluator.maybe_reload() is False
            assert isinstance(evaluator.last_error, SourceUnavailable)
            assert evaluator.maybe_reload() is False  # every attempt, while it lasts
            errors = {"environment": ENV}
            assert (
                registry.get_sample_value("feature_flag_config_reload_errors_total", errors) == 2.0
            )
            assert _treated(evaluator) == sum(bucket(FLAG, user) < 25 for user in USERS)

            proxy.restore()
            snapshot = backend.load(ENV)
            backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], snapshot.versions)
            assert evaluator.maybe_reload() is True
            assert evaluator.last_error is None
            assert evaluator.config.flag(FLAG).percentage == 50.0
        finally:
            engine.dispose()
            proxy.cut()


def test_a_first_start_on_an_empty_database_says_how_to_import_the_flags(tmp_path: Path) -> None:
    """No flag file named and none in the state directory: an action answers "unknown
    flag" and says what to do; doing it imports the file once and the action applies."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    env = cli_environment(tmp_path / "state", url, "ops", ROLLOUT_FLAG_BACKEND="sql")
    del env["ROLLOUT_FLAGS_FILE"]
    rollback = ("rollback", FLAG, "--env", ENV, "--to", "10", "--reason", "r", "--actor", "ops")
    refused = run_cli(env, *rollback)
    assert refused.returncode == 2
    assert f"unknown flag '{FLAG}' in {ENV}" in refused.stderr
    assert f"warning: {EMPTY_SQL_BACKEND}" in refused.stderr

    (tmp_path / "flags").mkdir()
    flags = copy_bundled_config(tmp_path / "flags")
    done = run_cli(env | {"ROLLOUT_FLAGS_FILE": str(flags)}, *rollback)
    assert done.returncode == 0, done.stderr
    assert EMPTY_SQL_BACKEND not in done.stderr
    engine = open_database(url)
    try:
        backend = SqlFlagBackend(engine)
        assert backend.environments() == ["production", "staging"]
        assert backend.load(ENV).config.flag(FLAG).percentage == 10.0
    finally:
        engine.dispose()


def _reported(engine: Engine) -> set[str]:
    """The config versions the simulated production instances last reported."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(InstanceReport.config_version).where(InstanceReport.environment == ENV)
        )
        return {str(version) for version in rows.scalars()}


def _scraped_versions(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        sample.labels["config_version"]
        for family in text_string_to_metric_families(text)
        if family.name == "feature_flag_config_info"
        for sample in family.samples
        if sample.labels["environment"] == ENV
    }


def _wait_for(what: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        with contextlib.suppress(OSError, OperationalError):
            if what():
                return
        time.sleep(0.2)
    raise AssertionError(f"not within 60 s; the simulator said:\n{log.read_text()[-3000:]}")


def test_the_simulator_process_reads_the_sql_backend_when_the_dashboard_does(
    tmp_path: Path,
) -> None:
    """`ROLLOUT_FLAG_BACKEND=sql`: the simulator imports its flag file into the empty
    database (as the dashboard would) and its instances follow a change written there."""
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    (tmp_path / "flags").mkdir()
    flags = copy_bundled_config(tmp_path / "flags")
    port = free_port()
    env = cli_environment(tmp_path / "state", url, "ops", ROLLOUT_FLAG_BACKEND="sql")
    log = tmp_path / "simulator.log"
    options = (f"--port={port}", "--history-minutes=0", "--interval=2")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.demo.simulator", f"--flags-file={flags}", *options],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    engine = open_database(url)
    try:
        backend = SqlFlagBackend(engine)
        _wait_for(lambda: backend.environments() == ["production", "staging"], process, log)
        first = backend.load(ENV)
        _wait_for(lambda: _reported(engine) == {first.config.loaded_version}, process, log)
        assert _scraped_versions(port) == {first.config.loaded_version}

        backend.apply(ENV, [FlagChange(FLAG, FlagState.ROLLOUT, 50)], first.versions)
        wanted = backend.load(ENV).config.loaded_version
        _wait_for(lambda: _reported(engine) == {wanted}, process, log)
        assert _scraped_versions(port) == {wanted}
        # the file was only imported: the change lives in the database
        assert load_config(flags, ENV).flag(FLAG).percentage == 25.0
    finally:
        process.terminate()
        process.wait(timeout=15)
        engine.dispose()
