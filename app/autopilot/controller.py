"""The autopilot's controller: one tick every interval, by the one process holding the
lease.

A tick reads every active plan, asks the metrics once per environment, decides per plan
(`decide`), and acts through `execute_action` as actor `autopilot`: the confirmed
transition, the version the tick read, the plan's idempotency key for this step and the
gates it judged in the audit record. A retried tick finds its key and never applies a
step twice; a flag changed meanwhile conflicts and pauses the plan.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from app.audit import AuditLog, Outcome
from app.autopilot.decide import Decision, Move, SeenChange, decide
from app.autopilot.evidence import (
    EnvironmentEvidence,
    gather_environment,
    plan_evidence,
    tick_start,
)
from app.autopilot.model import AUTOPILOT_ACTOR, PlanStatus, RolloutPlan
from app.autopilot.store import AutopilotEvent, PlanChanged, PlanStore, PlansUnavailable
from app.flags.backend import FlagBackend, FlagSnapshot
from app.flags.model import FlagState
from app.rollout.action_model import Action, ActionRequest, ActionResult, Transition
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardName, GuardPolicy, GuardResult
from app.rollout.inputs import MAX_REASON_LENGTH
from app.rollout.roles import Identity, Role
from queries.canary import CanaryQueries
from queries.source import MetricsSource, SourceUnavailable

__all__ = ["LEASE", "Controller", "ControllerConfig", "PlanOutcome", "TickReport"]

LEASE = "autopilot"
_log = logging.getLogger(__name__)

_FOUND_APPLIED = "found applied by the next tick: the tick that wrote it was cut off"
_CUT_OFF_BEFORE = "not applied: the tick that wrote it was cut off before changing the flag"
#: fresh keys one tick tries for a step whose key an unapplied attempt spent
_FRESH_KEYS = 3
_ACTIONS = {Move.ADVANCE: Action.ADVANCE, Move.ROLLBACK: Action.ROLLBACK, Move.KILL: Action.KILL}
#: what a dry-run plan says it would have done
_WOULD = {
    Move.ADVANCE: "advanced",
    Move.ROLLBACK: "rolled back",
    Move.KILL: "killed",
    Move.PAUSE: "paused",
}


@dataclass(frozen=True)
class ControllerConfig:
    interval: timedelta = timedelta(seconds=30)
    #: a leader not heard of for this long is replaced by a standby
    lease_period: timedelta = timedelta(seconds=90)
    #: the span the error rate and exposure are measured over at each tick
    window: timedelta = timedelta(minutes=5)
    pause_after_ticks: int = 10
    policy: GuardPolicy = field(default_factory=GuardPolicy)
    canary_flag: str | None = None


@dataclass(frozen=True)
class PlanOutcome:
    """What one tick did about one plan."""

    plan: RolloutPlan
    decision: Decision
    said: str  # what happened, in words (the plan's `last_decision`)
    applied: ActionResult | None = None
    #: the action tried and not applied (refused, conflicting, failed): counted by
    #: `app.autopilot.telemetry`
    attempted: ActionResult | None = None


@dataclass(frozen=True)
class TickReport:
    at: datetime
    leader: bool
    holder: str
    outcomes: tuple[PlanOutcome, ...] = ()
    queries: int = 0
    seconds: float = 0.0
    notices: tuple[str, ...] = ()

    def outcome(self, flag: str) -> PlanOutcome | None:
        return next((o for o in self.outcomes if o.plan.flag == flag), None)


class Controller:
    """Runs ticks for every active plan of one metrics database. `holder` names this
    process in the lease; `on_event` hears every action and pause (notifications)."""

    def __init__(
        self,
        *,
        engine: Engine | None,
        backend: FlagBackend,
        audit: AuditLog,
        metrics: Callable[[], Sequence[MetricsSource]],
        canary: Callable[[], Sequence[CanaryQueries]] = lambda: (),
        config: ControllerConfig = ControllerConfig(),
        holder: str = "",
        on_event: Callable[[AutopilotEvent, RolloutPlan], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.store = PlanStore(engine)
        self.backend = backend
        self.audit = audit
        self.metrics = metrics
        self.canary = canary
        self.config = config
        self.holder = holder or _default_holder()
        self.on_event = on_event
        self.clock = clock
        self.identity = Identity(AUTOPILOT_ACTOR, Role.OPERATOR, "autopilot")
        self._act_until = math.inf

    # the loop

    def run(self, stop: threading.Event, ticks: int | None = None) -> None:
        """Tick every interval until `stop` is set (or `ticks` ticks ran); a failing tick
        is logged and the next one tried. The lease is released on the way out."""
        count = 0
        try:
            while not stop.is_set() and (ticks is None or count < ticks):
                started = time.monotonic()
                try:
                    self.tick()
                except Exception:  # a tick's failure must not end the controller
                    _log.exception("autopilot tick failed")
                count += 1
                spent = time.monotonic() - started
                stop.wait(max(0.0, self.config.interval.total_seconds() - spent))
        finally:
            self.store.release_lease(LEASE, self.holder, self.clock())

    def tick(self) -> TickReport:
        """One pass over every active plan, if this process holds the lease."""
        started = time.monotonic()
        #: no action after half the lease: a standby may lead once it has passed
        self._act_until = started + self.config.lease_period.total_seconds() / 2
        now = self.clock()
        try:
            leader = self.store.take_lease(
                LEASE, self.holder, now, self.config.lease_period, self._interval
            )
        except PlansUnavailable as error:
            return TickReport(now, False, "", notices=(f"{error}: no plan acted on",))
        replayed = self._replay_journal()
        if not leader:
            beat = self.store.heartbeat(LEASE)
            return TickReport(now, False, beat.holder if beat else "", notices=replayed)
        try:
            plans = self.store.plans(statuses=[PlanStatus.ACTIVE])
        except PlansUnavailable as error:
            return TickReport(now, True, self.holder, notices=(f"{error}: no plan acted on",))
        outcomes: list[PlanOutcome] = []
        notices: list[str] = list(replayed)
        queries = 0
        for environment in sorted({p.environment for p in plans}):
            planned = [p for p in plans if p.environment == environment]
            done, asked, said = self._environment(environment, planned, now)
            outcomes.extend(done)
            queries += asked
            notices.extend(said)
        seconds = time.monotonic() - started
        try:
            self.store.beat(LEASE, self.holder, now, seconds)
        except PlansUnavailable as error:
            notices.append(f"heartbeat not recorded: {error}")
        return TickReport(now, True, self.holder, tuple(outcomes), queries, seconds, tuple(notices))

    def _replay_journal(self) -> tuple[str, ...]:
        """Move the audit records this process kept locally while the database was down
        into it (leader or standby): the next decisions then see a step a cut-off tick
        applied as the autopilot's own, not as a change by someone else."""
        if not self.audit.pending_in_journal():
            return ()
        moved = self.audit.replay_journal()
        return (f"{moved} audit record(s) kept locally are now in the database",) if moved else ()

    @property
    def _interval(self) -> float:
        return self.config.interval.total_seconds()

    # one environment

    def _environment(
        self, environment: str, plans: list[RolloutPlan], now: datetime
    ) -> tuple[list[PlanOutcome], int, list[str]]:
        try:
            snapshot = self.backend.load(environment)
        except (SourceUnavailable, OSError, RuntimeError, ValueError) as error:
            said = f"waited: the flags of {environment} cannot be read ({error})"
            waiting = Decision(Move.WAIT, said, no_data=True)
            return [self._keep(p, waiting, now) for p in plans], 0, [said]
        gated = any(GuardName.CANARY in p.gates for p in plans)
        changes = self._last_changes(environment)
        policy = self.config.policy
        began = [changes[p.flag].at if p.flag in changes else None for p in plans]
        evidence = gather_environment(
            self.metrics(),
            environment,
            self.config.window,
            now,
            self.canary() if gated else None,
            start=tick_start(began, now, policy),
            slot=policy.slots.slot,
            guardrails=policy.guardrails,
        )
        outcomes, notices = [], list(evidence.notices)
        for plan in plans:
            if time.monotonic() > self._act_until:  # the lease may pass to a standby
                said = "waited: this tick ran past half its lease; the next one goes on"
                outcomes.append(PlanOutcome(plan, Decision(Move.WAIT, said), said))
                continue
            outcomes.append(self._plan(plan, snapshot, evidence, changes, now))
        if any(o.said.startswith("waited: this tick ran past") for o in outcomes):
            notices.append("the tick ran past half its lease: some plans wait for the next")
        return outcomes, evidence.queries, notices

    def _last_changes(self, environment: str) -> Mapping[str, SeenChange]:
        if self.engine is None:
            return {}
        from queries.audit import last_changes

        try:
            frame = last_changes(self.engine, environment, keys=True)
        except SourceUnavailable:
            return {}
        return {
            str(flag): SeenChange(str(actor), at, str(key or ""), _number(before), _number(after))
            for flag, at, actor, key, before, after in zip(
                frame["flag"],
                frame["at"],
                frame["actor"],
                frame["idempotency_key"],
                frame["from_percentage"],
                frame["to_percentage"],
                strict=True,
            )
        }

    # one plan

    def _plan(
        self,
        plan: RolloutPlan,
        snapshot: FlagSnapshot,
        evidence: EnvironmentEvidence,
        changes: Mapping[str, SeenChange],
        now: datetime,
    ) -> PlanOutcome:
        if plan.flag not in snapshot.config.flags:
            gone = Decision(Move.PAUSE, f"paused: {plan.flag} no longer exists")
            return self._pause(plan, gone, now)
        if plan.flag in snapshot.read_only:
            said = f"paused: {plan.flag} is read-only ({snapshot.read_only[plan.flag]})"
            return self._pause(plan, Decision(Move.PAUSE, said), now)
        seen = plan_evidence(plan, snapshot, evidence, self.config.policy, changes.get(plan.flag))
        decision = decide(plan, seen, pause_after_ticks=self.config.pause_after_ticks)
        if decision.move is Move.RESYNC:
            return self._resync(plan, seen.state, seen.percentage, changes.get(plan.flag), now)
        moved = (seen.state, seen.percentage) != (plan.expected_state, plan.expected_percentage)
        if decision.move is Move.PAUSE and moved:
            own = self._cut_off_after_applying(plan, seen.state, seen.percentage)
            if own is not None:
                return self._resync(plan, seen.state, seen.percentage, own, now)
        if plan.dry_run and (decision.move in _ACTIONS or decision.gate is not None):
            return self._would(plan, decision, now)
        if decision.move is Move.PAUSE:
            return self._pause(plan, decision, now)
        if decision.move in _ACTIONS:
            gates = [g for g in seen.guards if g.name in plan.gates]
            if decision.gate is not None and decision.gate.name == GuardName.CANARY:
                gates.append(decision.gate)
            return self._act(plan, snapshot, decision, gates, now)
        next_at = None
        if decision.move is Move.WAIT and seen.at_step_since is not None:
            next_at = max(now, seen.at_step_since + plan.soak)
        return self._keep(plan, decision, now, next_at)

    def _cut_off_after_applying(
        self, plan: RolloutPlan, state: FlagState, percentage: float
    ) -> SeenChange | None:
        """The plan's own action that moved the flag where it is, left pending by a tick
        cut off between the write and its outcome (a leader killed mid-tick): settled
        applied now, so the plan follows it instead of pausing on an unknown change."""
        newest = self.audit.entries(plan.flag, environment=plan.environment, limit=1)
        if not newest:
            return None
        entry = newest[0]
        own = (entry.idempotency_key or "").startswith(f"autopilot-{plan.id}-")
        there = (entry.to_state, entry.to_percentage) == (state, percentage)
        if entry.outcome is not Outcome.PENDING or not own or not there:
            return None
        self.audit.settle(entry, Outcome.APPLIED, _FOUND_APPLIED)
        return SeenChange(
            entry.actor,
            entry.at,
            entry.idempotency_key or "",
            entry.from_percentage,
            entry.to_percentage,
        )

    def _act(
        self,
        plan: RolloutPlan,
        snapshot: FlagSnapshot,
        decision: Decision,
        gates: list[GuardResult],
        now: datetime,
    ) -> PlanOutcome:
        assert decision.to is not None
        action = _ACTIONS[decision.move]
        to_state = FlagState.DISABLED if decision.to == 0 else FlagState.ROLLOUT
        confirmed = Transition(
            plan.flag, plan.expected_state, plan.expected_percentage, to_state, decision.to
        )
        request = ActionRequest(
            action=action,
            environment=plan.environment,
            reason=f"autopilot: {decision.reason}"[:MAX_REASON_LENGTH],
            identity=self.identity,
            flag=plan.flag,
            to_percentage=None if action is Action.KILL else decision.to,
            idempotency_key=plan.action_key(str(action), decision.to),
            expected_versions={plan.flag: snapshot.versions.get(plan.flag, "")},
            confirmed=(confirmed,),
            judged=tuple(gates),
        )
        stored = plan
        result = execute_action(request, self.backend, self.audit, lambda _s, _f: list(gates))
        for _ in range(_FRESH_KEYS):
            if not result.replayed or result.applied:
                break
            # The key was spent by an attempt that left the flag where the plan expects
            # it (a tick cut off before writing, or a failed write): the step is taken
            # under the plan's next key, never under none.
            self._settle_unapplied(result)
            plan = replace(plan, actions_taken=plan.actions_taken + 1)
            key = plan.action_key(str(action), decision.to)
            request = replace(request, idempotency_key=key)
            result = execute_action(request, self.backend, self.audit, lambda _s, _f: list(gates))
        if result.applied:
            return self._applied(plan, decision, result, now)
        if result.exit_code is ExitCode.CONFLICT:
            said = f"paused: the flag was changed meanwhile — {result.error}"
            paused = self._pause(plan, replace(decision, move=Move.PAUSE, reason=said), now)
            return replace(paused, attempted=result)
        said = f"waited: {decision.move} {_pct(plan.expected_percentage)} → {_pct(decision.to)} "
        said += f"not applied ({result.error})"
        kept = self._keep(plan, replace(decision, move=Move.WAIT, reason=said), now, stored=stored)
        return replace(kept, attempted=result)

    def _settle_unapplied(self, result: ActionResult) -> None:
        """A pending record of an attempt whose tick was cut off before it wrote the flag
        (the flag is still at its `from`): failed, saying so."""
        pending = [e for e in result.audit if e.outcome is Outcome.PENDING]
        if pending:
            self.audit.settle_many(pending, Outcome.FAILED, _CUT_OFF_BEFORE)

    def _applied(
        self, plan: RolloutPlan, decision: Decision, result: ActionResult, now: datetime
    ) -> PlanOutcome:
        assert decision.to is not None
        audit_id = result.audit[0].id if result.audit else ""
        applied_at = result.audit[0].at if result.audit else now
        lowered = decision.move is not Move.ADVANCE
        moved = replace(
            plan,
            expected_state=FlagState.DISABLED if decision.to == 0 else FlagState.ROLLOUT,
            expected_percentage=decision.to,
            actions_taken=plan.actions_taken + 1,
            ticks_without_data=0,
            failing_since=None,
            last_decision=decision.reason,
            last_decision_at=now,
            next_at=None if lowered else now + plan.soak,
        )
        if lowered:  # a regression: a person looks before the plan climbs again
            moved = replace(
                moved,
                status=PlanStatus.PAUSED,
                status_reason=f"{decision.reason}; a person resumes the plan",
                status_by=AUTOPILOT_ACTOR,
                status_at=now,
            )
        event = _event(
            plan,
            decision,
            applied_at,
            decision.to,
            audit_id=audit_id,
            failure_seen_at=(plan.failing_since or now) if lowered else None,
        )
        return self._saved(moved, decision, decision.reason, now, event, result)

    def _pause(self, plan: RolloutPlan, decision: Decision, now: datetime) -> PlanOutcome:
        paused = replace(
            plan,
            status=PlanStatus.PAUSED,
            status_reason=decision.reason,
            status_by=AUTOPILOT_ACTOR,
            status_at=now,
            last_decision=decision.reason,
            last_decision_at=now,
            ticks_without_data=plan.ticks_without_data + (1 if decision.no_data else 0),
            next_at=None,
        )
        event = _event(plan, replace(decision, move=Move.PAUSE), now, plan.expected_percentage)
        return self._saved(paused, decision, decision.reason, now, event)

    def _resync(
        self,
        plan: RolloutPlan,
        state: FlagState,
        percentage: float,
        change: SeenChange | None,
        now: datetime,
    ) -> PlanOutcome:
        """The plan's own action was applied but the plan not updated (a tick cut off)."""
        taken = plan.actions_taken
        if change is not None:
            number = change.idempotency_key.split("-")[2:3]
            taken = max(taken, int(number[0])) if number and number[0].isdigit() else taken + 1
        said = f"found the flag at {_pct(percentage)}, where the autopilot's own action left it"
        moved = replace(
            plan,
            expected_state=state,
            expected_percentage=percentage,
            actions_taken=taken,
            last_decision=said,
            last_decision_at=now,
        )
        return self._saved(moved, Decision(Move.RESYNC, said, percentage), said, now)

    def _would(self, plan: RolloutPlan, decision: Decision, now: datetime) -> PlanOutcome:
        """A dry-run plan: what it would have done, recorded once (an event, the plan's
        last decision) and said again only when it would do something else; the flag,
        the plan's step and its status stay as they are."""
        verb = _WOULD[decision.move]
        change = ""
        if decision.to is not None and decision.move is not Move.PAUSE:
            change = f" {_pct(plan.expected_percentage)} → {_pct(decision.to)}"
        said = f"dry run: would have {verb}{change}"
        if plan.last_decision.startswith(said):
            return PlanOutcome(plan, decision, plan.last_decision)
        said += f" at {now:%H:%M} UTC: {decision.reason}"
        would = replace(decision, move=Move.DRY_RUN, reason=said)
        kept = replace(
            plan,
            last_decision=said,
            last_decision_at=now,
            ticks_without_data=0,
            failing_since=(plan.failing_since or now) if decision.failing else None,
            next_at=None,
        )
        to = plan.expected_percentage if decision.to is None else decision.to
        return self._saved(kept, would, said, now, event=_event(plan, would, now, to), note=True)

    def _keep(
        self,
        plan: RolloutPlan,
        decision: Decision,
        now: datetime,
        next_at: datetime | None = None,
        stored: RolloutPlan | None = None,
    ) -> PlanOutcome:
        """Record a wait or a hold: the words, the no-data count, when failing began.
        `stored` is the plan as read, when `plan` already differs from it (keys spent)."""
        base = stored or plan
        failing_since = (plan.failing_since or now) if decision.failing else None
        kept = replace(
            plan,
            last_decision=decision.reason,
            last_decision_at=now,
            ticks_without_data=plan.ticks_without_data + 1 if decision.no_data else 0,
            failing_since=failing_since,
            next_at=next_at,
        )
        unchanged = (
            kept.last_decision == base.last_decision
            and kept.ticks_without_data == base.ticks_without_data
            and kept.failing_since == base.failing_since
            and kept.next_at == base.next_at
            and kept.actions_taken == base.actions_taken
        )
        if unchanged:  # nothing new to say: no write (1,000 plans waiting cost nothing)
            return PlanOutcome(plan, decision, decision.reason)
        return self._saved(kept, decision, decision.reason, now, note=True)

    def _saved(
        self,
        plan: RolloutPlan,
        decision: Decision,
        said: str,
        now: datetime,
        event: AutopilotEvent | None = None,
        result: ActionResult | None = None,
        *,
        note: bool = False,
    ) -> PlanOutcome:
        """Write `plan` (only the autopilot's own notes with `note`: the version a person
        sees stays), record `event` and tell the listener."""
        try:
            saved = self.store.note(plan) if note else self.store.save(plan)
        except PlanChanged as changed:  # a person paused or edited it meanwhile: theirs wins
            saved = changed.current or plan
            said = f"{said} (plan changed meanwhile by {saved.status_by or 'someone'})"
        except PlansUnavailable as error:
            saved = plan
            said = f"{said} (not recorded in the plan: {error})"
        if event is not None:
            try:
                recorded = self.store.add_event(event)
            except PlansUnavailable:
                recorded = event
            if self.on_event is not None:
                try:
                    self.on_event(recorded, saved)
                except Exception:  # a notification must never stop a tick
                    _log.exception("autopilot event listener failed")
        return PlanOutcome(saved, decision, said, result)


def _event(
    plan: RolloutPlan, decision: Decision, at: datetime, to: float, **more: Any
) -> AutopilotEvent:
    """The event row of `decision` about `plan` (from where the plan left the flag)."""
    return AutopilotEvent(
        plan_id=plan.id,
        at=at,
        environment=plan.environment,
        flag=plan.flag,
        kind=str(decision.move),
        from_percentage=plan.expected_percentage,
        to_percentage=to,
        text=decision.reason,
        gate=decision.gate.as_json() if decision.gate else None,
        **more,
    )


def _pct(value: float) -> str:
    return f"{value:g} %"


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _default_holder() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
