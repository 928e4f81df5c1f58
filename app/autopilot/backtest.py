"""What a plan would have done: the autopilot's own rule replayed over the metrics history.

`run_backtest` measures once (`measure_history`: the slots of every flag of the
environment, from what the first tick judges to the last tick, one range query per
metric) and `replay` then runs, at every tick from `start` to `end`, the code a live
tick runs (`plan_evidence` → `decide`) on the slots that had ended by then. Nothing is
written: no flag, plan, audit record or event.

How history stands in for a live run:
- **The traffic is what it was.** The simulated plan starts its first step at `start`,
  where the flag really was then (the audit log's applied changes; the current config
  when none is recorded). An advance it would have made is recorded, but the evidence
  after it is still the real traffic: each tick is judged with the share the flag really
  had then (the exposure gate compares the split with it, so a simulated advance is no
  sample ratio mismatch), on the step that began at the later of the simulated step's
  start and the flag's last real change. A person's real change moves that start (the
  traffic changed) but does not pause the simulated plan.
- **It stops at the first rollback, kill or pause**: after any of them the live plan is
  paused until a person resumes it. A plan at its last step holds and keeps watching for
  failures (there is no "complete" move), so the replay goes on to `end`. A stored plan
  that is paused, aborted or a dry run is replayed as an active plan that acts.
- **What history does not keep is taken as it is now**: the flag's variants, its
  dependencies' steps and the instances' config versions (propagation). The canary
  verdict is not replayed: a plan gating on it is judged without that gate (said in
  `notices`). The newest slot with evaluations in the environment stands for the newest
  sample (data freshness).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from app.audit import AuditEntry, AuditLog, Outcome
from app.autopilot.decide import Decision, Move, SeenChange, decide
from app.autopilot.evidence import EnvironmentEvidence, plan_evidence, tick_start
from app.autopilot.model import (
    AUTOPILOT_ACTOR,
    PlanInvalid,
    PlanOptions,
    PlanStatus,
    RolloutPlan,
    plan_problems,
)
from app.errors import RolloutError
from app.evidence.gates import FlagSlots, VariantSlots
from app.evidence.sequential import known_intervals
from app.evidence.windows import MOST_SLOTS, slot_end_at_or_before, window_starts
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagDefinition, FlagState
from app.guardrails import Guardrail
from app.rollout.evidence import Measured, RailSlots, judged_start, measure_environment
from app.rollout.guards import GuardName, GuardPolicy
from queries.source import MetricsSource, counting_queries, first_answer

__all__ = [
    "MAX_SPAN",
    "Backtest",
    "DecisionRun",
    "NoHistory",
    "RealChange",
    "TickDecision",
    "backtest_plan",
    "backtest_ticks",
    "decision_runs",
    "default_backtest_options",
    "history_start",
    "measure_history",
    "real_changes",
    "replay",
    "run_backtest",
]

Array = npt.NDArray[np.float64]

#: the longest span one backtest replays
MAX_SPAN = timedelta(days=7)
#: the moves after which the live plan is paused: the replay ends there
_TERMINAL = frozenset({Move.ROLLBACK, Move.KILL, Move.PAUSE})


class NoHistory(RolloutError, RuntimeError):
    """No metrics source answered the backtest's questions: nothing to replay."""


@dataclass(frozen=True)
class RealChange:
    """An applied change of the flag, as the audit log has it."""

    at: datetime
    actor: str
    from_state: FlagState
    from_percentage: float
    to_state: FlagState
    to_percentage: float


def real_changes(entries: Iterable[AuditEntry]) -> tuple[RealChange, ...]:
    """The applied changes among `entries`, oldest first (a state the record does not
    know is read from its percentage: 0 disabled, else rollout)."""
    return tuple(
        sorted(
            (
                RealChange(
                    e.at,
                    e.actor,
                    e.from_state or _state_of(e.from_percentage),
                    e.from_percentage,
                    e.to_state or _state_of(e.to_percentage),
                    e.to_percentage,
                )
                for e in entries
                if e.outcome is Outcome.APPLIED
            ),
            key=lambda change: change.at,
        )
    )


def _state_of(percentage: float) -> FlagState:
    return FlagState.DISABLED if percentage <= 0 else FlagState.ROLLOUT


@dataclass(frozen=True)
class TickDecision:
    """What the plan decided at one tick: `percentage` where the simulated plan had the
    flag, `real_percentage` where it really was (the share the evidence was judged
    with), `step_since` when the judged step began."""

    at: datetime
    decision: Decision
    percentage: float
    real_percentage: float
    step_since: datetime

    @property
    def move(self) -> Move:
        return self.decision.move

    def as_json(self) -> dict[str, Any]:
        decision = self.decision
        return {
            "at": self.at.isoformat(),
            "move": str(decision.move),
            "reason": decision.reason,
            "gate": decision.gate.as_json() if decision.gate is not None else None,
            "to": decision.to,
            "percentage": self.percentage,
            "real_percentage": self.real_percentage,
            "step_since": self.step_since.isoformat(),
            "failing": decision.failing,
            "no_data": decision.no_data,
        }


@dataclass(frozen=True)
class Backtest:
    """A replay's decisions, why it ended (`stopped`), which source answered and with how
    many queries."""

    flag: str
    environment: str
    start: datetime
    end: datetime
    plan: RolloutPlan
    decisions: tuple[TickDecision, ...]
    stopped: str
    source: str = ""
    queries: int = 0
    notices: tuple[str, ...] = ()

    @property
    def actions(self) -> list[TickDecision]:
        """The decisions that would have changed the flag or the plan."""
        return [d for d in self.decisions if d.move in (Move.ADVANCE, *_TERMINAL)]

    def as_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "flag": self.flag,
            "environment": self.environment,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "plan": {
                "steps": list(plan.steps),
                "soak_seconds": plan.soak.total_seconds(),
                "gates": sorted(plan.gates),
                "on_failure": str(plan.on_failure),
                "stop_at": plan.stop_at,
                "allowed_hours": plan.allowed_hours.as_json() if plan.allowed_hours else None,
                "starts_at": plan.expected_percentage,
            },
            "source": self.source,
            "queries": self.queries,
            "ticks": len(self.decisions),
            "stopped": self.stopped,
            "notices": list(self.notices),
            "decisions": [d.as_json() for d in self.decisions],
        }


def backtest_ticks(start: datetime, end: datetime, interval: timedelta) -> list[datetime]:
    """Every tick from `start` to `end` (both included when on the interval); ValueError
    for a reversed span, one longer than `MAX_SPAN`, or an interval that is not positive."""
    if interval <= timedelta(0):
        raise ValueError("the tick interval must be positive")
    if end <= start:
        raise ValueError("a backtest must end after it starts")
    if end - start > MAX_SPAN:
        raise ValueError(f"a backtest spans at most {MAX_SPAN.days} days")
    count = int((end - start) / interval) + 1
    return [start + i * interval for i in range(count)]


def history_start(start: datetime, policy: GuardPolicy) -> float:
    """Where the one measurement begins (epoch seconds, on the slot grid): the oldest
    slot the first tick judges, for a step beginning at `start` (`tick_start`); no
    later tick judges an older one."""
    return tick_start([start], start, policy)


def backtest_plan(
    snapshot: FlagSnapshot, flag: str, options: PlanOptions, gates: frozenset[GuardName]
) -> RolloutPlan:
    """The plan `options` describe for `flag` (`gates`: the options', or the flag's
    default gates), checked as `plan set` checks it; PlanInvalid naming each problem."""
    problems = plan_problems(options.steps, options.soak, gates, options.stop_at)
    if flag not in snapshot.config.flags:
        problems.append(f"unknown flag {flag!r} in {snapshot.environment}")
    if problems:
        raise PlanInvalid(problems)
    current = snapshot.flag(flag)
    return RolloutPlan(
        flag=flag,
        environment=snapshot.environment,
        steps=options.steps,
        soak=options.soak,
        created_by="backtest",
        created_at=datetime.now(UTC),
        expected_state=current.state,
        expected_percentage=current.percentage,
        gates=gates,
        on_failure=options.on_failure,
        stop_at=options.stop_at,
        allowed_hours=options.allowed_hours,
    )


def default_backtest_options(snapshot: FlagSnapshot, policy: GuardPolicy) -> PlanOptions:
    """The plan a flag without one is replayed with: the config's rollout steps, the
    policy's minimum soak, the default gates and failure action."""
    return PlanOptions(steps=snapshot.config.global_.rollout_steps, soak=policy.min_soak)


def measure_history(
    source: MetricsSource,
    environment: str,
    start: float,
    end: datetime,
    slot: float,
    guardrails: Sequence[Guardrail] = (),
) -> Measured:
    """`measure_environment` (with `guardrails`) over the slots ending in (`start`,
    `end`], asked in pieces of at most `MOST_SLOTS` slots (a range query's limit) and
    joined; the newest sample and the config versions are the last piece's, a
    guardrail whose query failed in any piece says so. Lets `SourceUnavailable`
    through."""
    last = max(slot_end_at_or_before(end.timestamp(), slot), start)
    pieces = []
    begin = start
    while True:
        until = min(begin + MOST_SLOTS * slot, last)
        pieces.append(
            measure_environment(
                source, environment, begin, datetime.fromtimestamp(until, UTC), slot, guardrails
            )
        )
        if until >= last:
            break
        begin = until
    if len(pieces) == 1:
        return pieces[0]
    return replace(pieces[-1], start=start, slots=_joined(pieces), guardrails=_joined_rails(pieces))


def _joined(pieces: Sequence[Measured]) -> dict[str, FlagSlots]:
    """The flags' slots of consecutive measurements, end to end (a flag or variant
    missing from a piece counts zeros there)."""
    grids = [_grid(p) for p in pieces]
    flags = sorted({flag for p in pieces for flag in (p.slots or {})})
    joined = {}
    for flag in flags:
        per_piece = [
            (p.slots or {}).get(flag) or FlagSlots(g, {}, np.zeros(len(g)))
            for p, g in zip(pieces, grids, strict=True)
        ]
        variants = sorted({v for s in per_piece for v in s.variants})
        joined[flag] = FlagSlots(
            np.concatenate(grids),
            {v: _joined_variant([s.variants.get(v) for s in per_piece], grids) for v in variants},
            np.concatenate([s.counter for s in per_piece]),
        )
    return joined


def _joined_rails(pieces: Sequence[Measured]) -> dict[str, RailSlots | str]:
    """Each guardrail's counts of consecutive measurements, end to end (a flag or
    variant missing from a piece counts zeros there); why not, where a piece has none."""
    grids = [_grid(p) for p in pieces]
    joined: dict[str, RailSlots | str] = {}
    for name in pieces[-1].guardrails:
        parts = [p.guardrails.get(name, f"{name}: no counts") for p in pieces]
        failed = next((part for part in parts if isinstance(part, str)), None)
        if failed is not None:
            joined[name] = failed
            continue
        counted = [part for part in parts if isinstance(part, RailSlots)]
        flags: dict[str, dict[str, tuple[Array, Array]]] = {}
        for flag in sorted({f for part in counted for f in part.flags}):
            variants = sorted({v for part in counted for v in part.flags.get(flag, {})})
            flags[flag] = {v: _joined_pair(counted, grids, flag, v) for v in variants}
        joined[name] = RailSlots(np.concatenate(grids), flags)
    return joined


def _joined_pair(
    parts: Sequence[RailSlots], grids: Sequence[Array], flag: str, variant: str
) -> tuple[Array, Array]:
    """One variant's (bad, total) of a guardrail, end to end (zeros where a part has none)."""
    pairs = [
        part.flags.get(flag, {}).get(variant, (np.zeros(len(grid)), np.zeros(len(grid))))
        for part, grid in zip(parts, grids, strict=True)
    ]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def _grid(measured: Measured) -> Array:
    """The slot ends of `measured`."""
    count = round((measured.end - measured.start) / measured.slot)
    return measured.start + measured.slot * np.arange(1, count + 1, dtype=np.float64)


def _joined_variant(parts: Sequence[VariantSlots | None], grids: Sequence[Array]) -> VariantSlots:
    def column(name: str) -> Array:
        return np.concatenate(
            [
                getattr(part, name) if part is not None else np.zeros(len(grid))
                for part, grid in zip(parts, grids, strict=True)
            ]
        )

    return VariantSlots(column("evaluations"), column("errors"), column("split"))


def replay(
    plan: RolloutPlan,
    snapshot: FlagSnapshot,
    measured: Measured,
    changes: Sequence[RealChange],
    ticks: Sequence[datetime],
    policy: GuardPolicy,
    *,
    pause_after_ticks: int = 10,
    window: timedelta = timedelta(minutes=5),
    notices: Sequence[str] = (),
) -> tuple[list[TickDecision], str]:
    """`plan`'s decision at every tick of `ticks` on `measured` (see the module's
    docstring), and why the replay ended. `snapshot` is the flag's config now; `changes`
    its applied changes, oldest first."""
    flag = plan.flag
    history = _History(snapshot, flag, changes)
    state, percentage = history.at(ticks[0])
    plan = replace(
        plan,
        status=PlanStatus.ACTIVE,
        status_reason="",
        dry_run=False,  # what the plan would do is the whole point: every move is listed
        expected_state=state,
        expected_percentage=percentage,
        actions_taken=0,
        ticks_without_data=0,
        failing_since=None,
    )
    slices = _Slices(measured, (flag, *snapshot.flag(flag).metadata.dependencies))
    ahead = _Lookahead(measured, snapshot.flag(flag), policy)
    step_began, by = ticks[0], AUTOPILOT_ACTOR
    decisions: list[TickDecision] = []
    with known_intervals() as learn:
        for index, tick in enumerate(ticks):
            real_state, real_percentage = history.at(tick)
            since, who = history.step_start(tick, step_began, by)
            ahead.learn(ticks, index, history, step_began, learn)
            seen = plan_evidence(
                plan,
                history.snapshot(real_state, real_percentage),
                EnvironmentEvidence(
                    snapshot.environment, tick, window, slices.at(tick), tuple(notices)
                ),
                policy,
                SeenChange(who, since),
            )
            # the plan's own position, judged on the real traffic (the module's docstring)
            seen = replace(seen, state=plan.expected_state, percentage=plan.expected_percentage)
            decision = decide(plan, seen, pause_after_ticks=pause_after_ticks)
            decisions.append(
                TickDecision(tick, decision, plan.expected_percentage, real_percentage, since)
            )
            if decision.move in _TERMINAL:
                return decisions, (
                    f"stopped at {tick:%Y-%m-%d %H:%M:%S} UTC: {decision.move} (the live plan "
                    "would be paused there until a person resumes it)"
                )
            if decision.move is Move.ADVANCE and decision.to is not None:
                plan = replace(
                    plan,
                    expected_state=FlagState.DISABLED if decision.to == 0 else FlagState.ROLLOUT,
                    expected_percentage=decision.to,
                    actions_taken=plan.actions_taken + 1,
                    ticks_without_data=0,
                )
                step_began, by = tick, AUTOPILOT_ACTOR
                ahead.forget()  # the next ticks judge the new step
            else:
                no_data = plan.ticks_without_data + 1 if decision.no_data else 0
                plan = replace(plan, ticks_without_data=no_data)
    return decisions, f"ran to {ticks[-1]:%Y-%m-%d %H:%M:%S} UTC without a rollback, kill or pause"


class _Lookahead:
    """Searches the always-valid intervals the next ticks will show in one vectorised
    call (`known_intervals`: the same numbers to the bit, a fraction of the time): the
    treatment's and the control's counts since the step began, as `judge_gates` sums
    them, for the step the ticks are judged on as far as known now. A tick whose counts
    differ (a simulated advance began a new step) searches as always."""

    #: ticks searched at once
    AHEAD = 120

    def __init__(self, measured: Measured, flag: FlagDefinition, policy: GuardPolicy) -> None:
        self._policy = policy
        self._alpha = math.exp(-policy.gate_settings(flag.key).thresholds().step)
        self._until = -1
        self._running: tuple[Array, ...] | None = None
        slots = (measured.slots or {}).get(flag.key)
        if slots is None:
            return
        gates = slots.gate_slots(measured.errors_in, flag.rollout.variant, flag.default_variant)
        if gates.treatment is None or gates.control is None:
            return  # no interval is shown: failed evaluations carry no variant
        self._ends = gates.ends
        arms = (*gates.treatment, *gates.control)
        self._running = tuple(np.concatenate([[0.0], np.cumsum(arm[0])]) for arm in arms)

    def forget(self) -> None:
        self._until = -1

    def learn(
        self,
        ticks: Sequence[datetime],
        index: int,
        history: _History,
        began: datetime,
        learn: Callable[[tuple[Array, Array], tuple[Array, Array], float], None],
    ) -> None:
        """Search the intervals of the `AHEAD` ticks from `ticks[index]` unless known, for
        a simulated step that began at `began`."""
        if self._running is None or index <= self._until:
            return
        chunk = ticks[index : index + self.AHEAD]
        self._until = index + len(chunk) - 1
        lows, highs = [], []
        for tick in chunk:
            start, _ = judged_start(history.step_start(tick, began, "")[0], tick, self._policy)
            cut = window_starts(start, tick.timestamp(), self._policy.slots)
            if cut is not None:
                lows.append(np.searchsorted(self._ends, cut.first, side="right"))
                highs.append(np.searchsorted(self._ends, cut.end, side="right"))
        if not lows:
            return
        low, high = np.array(lows), np.array(highs)
        t_bad, t_total, c_bad, c_total = (r[high] - r[low] for r in self._running)
        learn(
            (np.minimum(t_bad, t_total), t_total),
            (np.minimum(c_bad, c_total), c_total),
            self._alpha,
        )


class _History:
    """Where the flag really was at each moment, from its applied changes."""

    def __init__(self, snapshot: FlagSnapshot, flag: str, changes: Sequence[RealChange]) -> None:
        self._snapshot = snapshot
        self._flag = flag
        self._changes = list(changes)
        self._times = [change.at for change in self._changes]
        self._made: dict[tuple[FlagState, float], FlagSnapshot] = {}

    def last_before(self, at: datetime) -> RealChange | None:
        """The newest change applied at or before `at`."""
        index = bisect_right(self._times, at)
        return self._changes[index - 1] if index else None

    def step_start(self, at: datetime, began: datetime, by: str) -> tuple[datetime, str]:
        """When the step judged at `at` began and who began it: the later of the
        simulated step's start (`began`, by `by`) and the newest real change."""
        real = self.last_before(at)
        if real is not None and real.at > began:
            return real.at, real.actor
        return began, by

    def at(self, moment: datetime) -> tuple[FlagState, float]:
        """The flag's state and percentage at `moment`: after the newest change before
        it, before the first change after it, or as configured now."""
        last = self.last_before(moment)
        if last is not None:
            return last.to_state, last.to_percentage
        if self._changes:
            first = self._changes[0]
            return first.from_state, first.from_percentage
        current = self._snapshot.flag(self._flag)
        return current.state, current.percentage

    def snapshot(self, state: FlagState, percentage: float) -> FlagSnapshot:
        """The config now, with the flag at `state` and `percentage`."""
        current = self._snapshot.flag(self._flag)
        if (current.state, current.percentage) == (state, percentage):
            return self._snapshot
        key = (state, percentage)
        if key not in self._made:
            rollout = current.rollout
            if state is FlagState.ROLLOUT:
                rollout = rollout.model_copy(update={"percentage": percentage})
            defined = current.model_copy(update={"state": state, "rollout": rollout})
            flags = {**self._snapshot.config.flags, self._flag: defined}
            config = self._snapshot.config.model_copy(update={"flags": flags})
            self._made[key] = replace(self._snapshot, config=config)
        return self._made[key]


class _Slices:
    """The measured slots as a tick saw them: those ending at or before it, of the flags
    it judges (views of the arrays, never copies), and the newest slot with evaluations
    in the environment as its newest sample."""

    def __init__(self, measured: Measured, flags: Sequence[str]) -> None:
        self._measured = measured
        self._keys = tuple(flags)
        self._flags = {
            f: measured.slots[f]
            for f in dict.fromkeys(flags)
            if measured.slots and f in measured.slots
        }
        ends = _grid(measured)
        busy = np.zeros(len(ends))
        for slots in (measured.slots or {}).values():
            busy = busy + slots.evaluations() + slots.counter
        self._busy = ends[busy > 0].tolist()

    def at(self, tick: datetime) -> Measured:
        measured = self._measured
        if measured.slots is None:
            return measured
        moment = tick.timestamp()
        end = max(measured.start, min(measured.end, slot_end_at_or_before(moment, measured.slot)))
        count = round((end - measured.start) / measured.slot)
        newest = bisect_right(self._busy, moment)
        return replace(
            measured,
            newest=datetime.fromtimestamp(self._busy[newest - 1], UTC) if newest else None,
            slots={flag: _first(slots, count) for flag, slots in self._flags.items()},
            end=end,
            guardrails={
                name: rail if isinstance(rail, str) else _first_rail(rail, self._keys, count)
                for name, rail in measured.guardrails.items()
            },
        )


def _first_rail(rail: RailSlots, flags: Sequence[str], count: int) -> RailSlots:
    """The first `count` slots of `rail`, of `flags` only."""
    return RailSlots(
        rail.ends[:count],
        {
            flag: {v: (bad[:count], total[:count]) for v, (bad, total) in rail.flags[flag].items()}
            for flag in flags
            if flag in rail.flags
        },
    )


def _first(slots: FlagSlots, count: int) -> FlagSlots:
    """The first `count` slots of `slots`."""
    return FlagSlots(
        slots.ends[:count],
        {
            variant: VariantSlots(v.evaluations[:count], v.errors[:count], v.split[:count])
            for variant, v in slots.variants.items()
        },
        slots.counter[:count],
    )


def run_backtest(
    sources: Sequence[MetricsSource],
    audit: AuditLog,
    snapshot: FlagSnapshot,
    plan: RolloutPlan,
    start: datetime,
    end: datetime,
    policy: GuardPolicy,
    *,
    interval: timedelta = timedelta(seconds=30),
    pause_after_ticks: int = 10,
    window: timedelta = timedelta(minutes=5),
) -> Backtest:
    """`plan` replayed from `start` to `end` every `interval` on the first source that
    answers (`measure_history`) and the flag's applied changes in `audit`. ValueError
    for a span `backtest_ticks` refuses; NoHistory when no source answers."""
    ticks = backtest_ticks(start, end, interval)
    notices: list[str] = []
    if GuardName.CANARY in plan.gates:
        plan = replace(plan, gates=plan.gates - {GuardName.CANARY})
        notices.append("the canary verdict is not replayed: judged without the canary gate")
    slot = policy.slots.slot
    begin = history_start(ticks[0], policy)
    with counting_queries() as sent:
        answer = first_answer(
            sources,
            lambda source: measure_history(
                source, snapshot.environment, begin, ticks[-1], slot, policy.guardrails
            ),
            notices,
            "trying the next source.",
        )
    if answer is None:
        raise NoHistory("; ".join(["no metrics source answered: nothing to replay", *notices]))
    source, measured = answer
    entries = audit.entries(
        plan.flag, environment=snapshot.environment, outcomes=(Outcome.APPLIED,), limit=100_000
    )
    decisions, stopped = replay(
        plan,
        snapshot,
        measured,
        real_changes(entries),
        ticks,
        policy,
        pause_after_ticks=pause_after_ticks,
        window=window,
    )
    return Backtest(
        flag=plan.flag,
        environment=snapshot.environment,
        start=ticks[0],
        end=ticks[-1],
        plan=replace(plan, expected_percentage=decisions[0].percentage),
        decisions=tuple(decisions),
        stopped=stopped,
        source=source.name,
        queries=sent.count,
        notices=tuple(notices),
    )


@dataclass(frozen=True)
class DecisionRun:
    """Consecutive ticks with the same move at the same step: what a person reads (the
    words are the last tick's)."""

    first: TickDecision
    last: TickDecision
    ticks: int

    @property
    def words(self) -> str:
        """'10:00:00 → 10:29:30 UTC wait ×60 at 25 %: waited: soak 29 min of 30 min'."""
        first, last = self.first, self.last
        span = f"{first.at:%Y-%m-%d %H:%M:%S}"
        if self.ticks > 1:
            span += f" → {last.at:%H:%M:%S}"
        times = f" ×{self.ticks}" if self.ticks > 1 else ""
        return f"{span} UTC {last.move}{times} at {last.percentage:g} %: {last.decision.reason}"


def decision_runs(decisions: Sequence[TickDecision]) -> list[DecisionRun]:
    """`decisions` as runs of the same move at the same step; every action is its own."""
    runs: list[DecisionRun] = []
    for decision in decisions:
        previous = runs[-1] if runs else None
        same = (
            previous is not None
            and previous.last.move is decision.move
            and previous.last.percentage == decision.percentage
            and decision.move not in (Move.ADVANCE, *_TERMINAL)
        )
        if previous is not None and same:
            runs[-1] = DecisionRun(previous.first, decision, previous.ticks + 1)
        else:
            runs.append(DecisionRun(decision, decision, 1))
    return runs
