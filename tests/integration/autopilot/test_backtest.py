"""`autopilot backtest` on real parts: a Prometheus backfilled by `promtool tsdb
create-blocks-from openmetrics` with a day of Poisson evaluations (seed preset names), the
flags in YAML files and the audit log in SQLite. A healthy A/A flag is never acted against;
a regression at a known time is rolled back minutes after it; and the live controller,
ticking on the same Prometheus with a clock stepping 30 s, decides the same at every tick
up to and including its first action."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from app.audit import AuditEntry, AuditLog, Outcome, RecordedAction
from app.autopilot.backtest import Backtest, measure_history, run_backtest
from app.autopilot.controller import Controller, ControllerConfig
from app.autopilot.decide import Move
from app.autopilot.model import PlanOptions, RolloutPlan
from app.autopilot.service import set_plan
from app.autopilot.store import PlanStore
from app.cli import main
from app.flags.backend import FlagChange
from app.flags.model import FlagState
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import insert_rollups, open_database
from app.rollout.evidence import measure_environment
from app.rollout.guards import GuardName, GuardPolicy
from queries.prometheus import PrometheusMetrics
from queries.sql import SqlMetrics
from tests.support.backtest_history import poisson_rollups
from tests.support.bundled import copy_bundled_config
from tests.support.identities import OPERATOR
from tests.support.prometheus import PrometheusProcess, openmetrics_from_rollups, start_prometheus
from tests.support.state_files import writes_nothing

pytestmark = pytest.mark.prometheus

ENV = "production"
HEALTHY = "phase1_config_externalization"  # rollout 10 %, no dependencies
REGRESSING = "phase1_pydantic_settings"  # moved to 25 % at START; its dependency not gated
START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
ONSET = START + timedelta(minutes=90)  # the treatment of REGRESSING fails from here on
DAY = timedelta(hours=24)
TICK = timedelta(seconds=30)
POLICY = GuardPolicy()
GATES = frozenset(
    {
        GuardName.DATA_FRESH,
        GuardName.ERROR_RATE,
        GuardName.SOAK_TIME,
        GuardName.DEPENDENCIES,
        GuardName.EXPOSURE,
    }
)


def healthy(_at: datetime) -> tuple[float, float, float]:
    return (0.10, 0.005, 0.005)  # A/A: the same error rate in both arms


def regressing(at: datetime) -> tuple[float, float, float]:
    return (0.25, 0.10 if at >= ONSET else 0.005, 0.005)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    """A day of both flags from an hour before START (the first slots have no rate)."""
    since, until = START - timedelta(hours=1), START + DAY + timedelta(minutes=5)
    rollups = poisson_rollups(ENV, HEALTHY, since, until, healthy, seed=1)
    rollups += poisson_rollups(ENV, REGRESSING, since, until, regressing, seed=2)
    server = start_prometheus(
        openmetrics_from_rollups(rollups), tmp_path_factory.mktemp("backtest-prometheus")
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Parts:
    engine: Engine
    backend: YamlFlagBackend
    audit: AuditLog
    source: PrometheusMetrics


@pytest.fixture
def parts(tmp_path: Path, prometheus: PrometheusProcess) -> Iterator[Parts]:
    """The flags as at START: REGRESSING moved 5 → 25 % then, HEALTHY 5 → 10 % (the
    audit log says so, with START as the time of both changes)."""
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    backend = YamlFlagBackend(copy_bundled_config(tmp_path))
    snapshot = backend.load(ENV)
    backend.apply(
        ENV,
        [FlagChange(REGRESSING, FlagState.ROLLOUT, 25.0)],
        {REGRESSING: snapshot.versions[REGRESSING]},
    )
    audit = AuditLog(engine, tmp_path / "journal.jsonl")
    for flag, before, after in ((HEALTHY, 5.0, 10.0), (REGRESSING, 5.0, 25.0)):
        audit.record(
            AuditEntry(
                at=START,
                actor="olga",
                action=RecordedAction.ADVANCE,
                flag=flag,
                environment=ENV,
                from_state=FlagState.ROLLOUT,
                from_percentage=before,
                to_state=FlagState.ROLLOUT,
                to_percentage=after,
                reason="by hand",
                outcome=Outcome.APPLIED,
            )
        )
    yield Parts(engine, backend, audit, PrometheusMetrics(prometheus.url))
    engine.dispose()


def a_plan(parts: Parts, flag: str, **options: object) -> RolloutPlan:
    chosen: dict[str, object] = {
        "steps": (10.0, 25.0, 50.0, 100.0),
        "soak": timedelta(minutes=30),
        "gates": GATES,
    }
    return set_plan(
        PlanStore(parts.engine),
        parts.audit,
        OPERATOR,
        parts.backend.load(ENV),
        flag,
        PlanOptions(**(chosen | options)),  # type: ignore[arg-type]
        now=START,
    )


def backtest(parts: Parts, plan: RolloutPlan) -> Backtest:
    return run_backtest(
        [parts.source], parts.audit, parts.backend.load(ENV), plan, START, START + DAY, POLICY
    )


def live_until_first_action(parts: Parts, ticks: int) -> list[tuple[datetime, Move, str]]:
    """The live controller's decisions on the plan from START, a tick every 30 s of an
    injected clock, up to and including its first action."""
    clock = [START]
    controller = Controller(
        engine=parts.engine,
        backend=parts.backend,
        audit=parts.audit,
        metrics=lambda: [parts.source],
        config=ControllerConfig(policy=POLICY),
        holder="test",
        clock=lambda: clock[0],
    )
    seen: list[tuple[datetime, Move, str]] = []
    for _ in range(ticks):
        [outcome] = controller.tick().outcomes
        seen.append((clock[0], outcome.decision.move, outcome.decision.reason))
        if outcome.decision.move in (Move.ADVANCE, Move.ROLLBACK, Move.KILL, Move.PAUSE):
            return seen
        clock[0] += TICK
    raise AssertionError(f"no action in {ticks} ticks: {seen[-1]}")


def test_a_healthy_day_is_never_acted_against(parts: Parts) -> None:
    plan = a_plan(parts, HEALTHY, stop_at=50.0)
    result = backtest(parts, plan)
    assert len(result.decisions) == 2 * 60 * 24 + 1
    assert {d.move for d in result.decisions} <= {Move.WAIT, Move.HOLD, Move.ADVANCE}
    assert not any(d.decision.failing for d in result.decisions)
    advances = [(d.at - START, d.decision.to) for d in result.actions]
    assert advances == [(timedelta(minutes=30), 25.0), (timedelta(minutes=60), 50.0)]
    assert result.decisions[-1].move is Move.HOLD  # 100 % waits for a person
    assert result.stopped.startswith("ran to")
    assert result.source == "prometheus"
    assert result.queries <= 4  # measured once: newest, counts, error counts, versions
    # the traffic stayed at 10 %: every tick judged with that share, never a mismatch
    assert {d.real_percentage for d in result.decisions} == {10.0}


def test_a_regression_at_a_known_time_is_rolled_back_minutes_after_it(parts: Parts) -> None:
    plan = a_plan(parts, REGRESSING, steps=(10.0, 25.0, 50.0), soak=timedelta(hours=12))
    result = backtest(parts, plan)
    last = result.decisions[-1]
    assert last.move is Move.ROLLBACK and last.decision.to == 10.0
    assert last.decision.gate is not None and last.decision.gate.name == GuardName.ERROR_RATE
    assert timedelta(0) < last.at - ONSET <= timedelta(minutes=5)
    assert result.stopped.startswith(f"stopped at {last.at:%Y-%m-%d %H:%M:%S} UTC: rollback")
    before = [d for d in result.decisions if d.at < ONSET]
    assert before and all(d.move is Move.WAIT and not d.decision.failing for d in before)


@pytest.mark.parametrize(
    ("flag", "options", "ticks"),
    [
        (HEALTHY, {"stop_at": 50.0}, 70),
        (REGRESSING, {"steps": (10.0, 25.0, 50.0), "soak": timedelta(hours=12)}, 200),
    ],
    ids=["healthy-advance", "regression-rollback"],
)
def test_the_backtest_decides_as_the_live_controller_did(
    parts: Parts, flag: str, options: dict[str, object], ticks: int
) -> None:
    plan = a_plan(parts, flag, **options)
    replayed = [(d.at, d.move, d.decision.reason) for d in backtest(parts, plan).decisions]
    live = live_until_first_action(parts, ticks)
    assert replayed[: len(live)] == live
    assert live[-1][1] is (Move.ADVANCE if flag == HEALTHY else Move.ROLLBACK)


def test_history_longer_than_one_range_query_is_asked_in_pieces_and_joined(
    tmp_path: Path,
) -> None:
    """10,800 slots of 1 s: two range questions, the same counts as one."""
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    since = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    insert_rollups(
        engine, poisson_rollups(ENV, HEALTHY, since, since + timedelta(hours=3), healthy, slot=60)
    )
    source = SqlMetrics(engine)
    end = since + timedelta(hours=3)
    joined = measure_history(source, ENV, since.timestamp(), end, 1.0)
    whole = measure_environment(source, ENV, since.timestamp(), end, 1.0)
    assert joined.slots is not None and whole.slots is not None
    assert len(joined.slots[HEALTHY].ends) == 10_800
    np.testing.assert_array_equal(joined.slots[HEALTHY].ends, whole.slots[HEALTHY].ends)
    for variant in ("on", "off"):
        mine, theirs = (
            joined.slots[HEALTHY].variants[variant],
            whole.slots[HEALTHY].variants[variant],
        )
        np.testing.assert_array_equal(mine.evaluations, theirs.evaluations)
        np.testing.assert_array_equal(mine.errors, theirs.errors)
    np.testing.assert_array_equal(joined.slots[HEALTHY].counter, whole.slots[HEALTHY].counter)
    assert joined.slots[HEALTHY].evaluations().sum() > 0
    engine.dispose()


@pytest.fixture
def terminal(
    parts: Parts,
    tmp_path: Path,
    prometheus: PrometheusProcess,
    monkeypatch: pytest.MonkeyPatch,
    no_rollout_environment: None,
) -> Path:
    """The settings of `rollout-dashboard` on `parts`: its state directory."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "ROLLOUT_STATE_DIR": str(tmp_path),
        "ROLLOUT_FLAGS_FILE": str(tmp_path / "feature_flags.yaml"),
        "ROLLOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}",
        "ROLLOUT_PROMETHEUS_URL": prometheus.url,
        "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


SPAN = ("--env", ENV, "--from", START.isoformat(), "--to", (START + DAY).isoformat())


def test_the_command_prints_the_decisions_of_a_typed_plan_and_writes_nothing(
    parts: Parts, terminal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = writes_nothing(terminal)
    code, out, err = cli(
        capsys,
        "autopilot",
        "backtest",
        REGRESSING,
        *SPAN,
        "--steps",
        "10,25,50",
        "--soak",
        "12h",
        "--gates",
        "data_fresh,error_rate,soak_time,exposure",
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert (document["flag"], document["environment"]) == (REGRESSING, ENV)
    decisions = document["decisions"]
    assert {d["move"] for d in decisions[:-1]} == {"wait"}
    last = decisions[-1]
    assert (last["move"], last["to"], last["gate"]["name"]) == ("rollback", 10.0, "error_rate")
    assert last["reason"].startswith("rollback 25 % → 10 %: error_rate failed")
    assert datetime.fromisoformat(last["at"]) - ONSET <= timedelta(minutes=5)
    assert document["stopped"].startswith("stopped at")
    check()

    code, out, _ = cli(
        capsys,
        "autopilot",
        "backtest",
        REGRESSING,
        *SPAN,
        "--steps",
        "10,25,50",
        "--soak",
        "12h",
        "--gates",
        "data_fresh,error_rate,soak_time,exposure",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"backtest of {REGRESSING} in {ENV}, 2026-11-30 06:00:00 → ")
    assert "from 25 %: 10 → 25 → 50 %, soak 12 h" in lines[0]
    assert "2026-11-30 06:00:00 → 07:3" in lines[2] and " wait ×" in lines[2]
    assert " rollback at 25 %: rollback 25 % → 10 %: error_rate failed" in lines[3]
    assert lines[-1].startswith(f"{len(decisions)} ticks (0 advance, 1 rollback, 0 kill, 0 pause)")
    check()


def test_the_stored_plan_is_replayed_when_no_plan_is_typed(
    parts: Parts, terminal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "autopilot", "backtest", HEALTHY, *SPAN)
    assert code == 2
    assert f"no rollout plan for '{HEALTHY}' in {ENV}" in err
    a_plan(parts, HEALTHY, stop_at=50.0)
    check = writes_nothing(terminal)
    code, out, err = cli(capsys, "autopilot", "backtest", HEALTHY, *SPAN, "--json")
    assert code == 0, err
    moves = [d["move"] for d in json.loads(out)["decisions"]]
    assert moves.count("advance") == 2 and moves[-1] == "hold"
    assert "rollback" not in moves
    check()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--soak", "30m"), "give --steps and --soak"),
        (("--steps", "50,10", "--soak", "30m"), "steps must rise"),
        (("--steps", "10,50", "--soak", "30m", "--on-failure", "shrug"), "on failure 'shrug'"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_problem(
    terminal: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], said: str
) -> None:
    code, _, err = cli(capsys, "autopilot", "backtest", HEALTHY, *SPAN, *extra)
    assert code == 2
    assert said in err


def test_a_span_that_cannot_be_replayed_is_refused(
    terminal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        capsys,
        "autopilot",
        "backtest",
        HEALTHY,
        "--from",
        START.isoformat(),
        "--to",
        (START + timedelta(days=9)).isoformat(),
        "--steps",
        "10,50",
        "--soak",
        "30m",
    )
    assert code == 2
    assert "at most 7 days" in err
