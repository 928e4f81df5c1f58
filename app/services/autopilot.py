"""What the pages show of the autopilot, and how they read a typed plan: plain functions
over `RolloutPlan`, its events and the controller's heartbeat, no Streamlit.

A plan reads as a timeline (each step done, current with its soak progress, next,
later, or waiting for a person above the highest step the autopilot takes alone) and
"blocked and why" from the plan's status and last decision. The overview reads it as
one line per flag ("→ 25 % in 12 min", "paused by olga: lunch", "holding at 50 %:
100 % waits for a person", "rolled back 25 → 5 % 3 min ago (paused)"). The heartbeat
says who leads and when it last ticked, and says loudly when nobody acts on the plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from app.autopilot.model import (
    AUTOPILOT_ACTOR,
    AllowedHours,
    OnFailure,
    PlanInvalid,
    PlanOptions,
    PlanStatus,
    RolloutPlan,
    duration_text,
    parse_duration,
    parse_gates,
    parse_steps,
    plan_problems,
)
from app.autopilot.store import AutopilotEvent, Heartbeat
from app.flags.model import FlagState
from app.rollout.guards import GuardName
from app.text import code_span, format_age

if TYPE_CHECKING:  # a backtest's modules load only when one is shown
    from app.autopilot.backtest import Backtest

__all__ = [
    "START_AUTOPILOT",
    "HeartbeatSummary",
    "KilledFlagWords",
    "PlanForm",
    "StepState",
    "Timeline",
    "TimelineStep",
    "backtest_rows",
    "change_words",
    "column_text",
    "column_texts",
    "event_rows",
    "heartbeat_summary",
    "killed_flag_words",
    "moved_words",
    "newest_events",
    "plan_timeline",
    "read_plan_form",
    "status_text",
]

#: what starts the controller, as the pages name it
START_AUTOPILOT = "rollout-dashboard autopilot"


class StepState(StrEnum):
    DONE = "done"
    CURRENT = "current"
    NEXT = "next"
    LATER = "later"
    #: above the highest step the autopilot takes alone: a person advances there
    PERSON = "waits for a person"


STEP_ICONS: dict[StepState, str] = {
    StepState.DONE: "✅",
    StepState.CURRENT: "▶️",
    StepState.NEXT: "⏭️",
    StepState.LATER: "·",
    StepState.PERSON: "✋",
}


@dataclass(frozen=True)
class TimelineStep:
    percentage: float
    state: StepState
    #: what the row says beyond its state: 'soak 12 of 30 min', 'in 18 min', …
    detail: str = ""
    #: the flag is here but the plan has no such step (set on a flag between steps)
    off_plan: bool = False

    @property
    def label(self) -> str:
        """'▶️ 5 %' (and '(not a plan step)' for where the flag is between steps)."""
        off = " (not a plan step)" if self.off_plan else ""
        return f"{STEP_ICONS[self.state]} {self.percentage:g} %{off}"


@dataclass(frozen=True)
class Timeline:
    steps: tuple[TimelineStep, ...]
    #: why the plan does not move on by itself now ('' when it does, or has nothing left)
    blocked: str
    #: when the flag reached where it is (None: before the recorded history)
    since: datetime | None

    @property
    def current(self) -> TimelineStep | None:
        return next((s for s in self.steps if s.state is StepState.CURRENT), None)


def _where(state: FlagState, percentage: float) -> float:
    """Where a flag is on the plan's scale: disabled is 0 %, enabled 100 %."""
    if state is FlagState.DISABLED:
        return 0.0
    if state is FlagState.ENABLED:
        return 100.0
    return percentage


def soak_progress(soak: timedelta, reached_at: datetime | None, now: datetime) -> str:
    """'soak 12 of 30 min', 'soaked 30 min', 'no soak', 'soaked (at this step since before
    the history began)'."""
    if soak <= timedelta(0):
        return "no soak"
    if reached_at is None:
        return "soaked (at this step since before the history began)"
    elapsed = max(timedelta(0), now - reached_at)
    if elapsed >= soak:
        return f"soaked {duration_text(soak)}"
    total = soak.total_seconds()
    spent = elapsed.total_seconds()
    if total < 120:
        return f"soak {spent:.0f} of {total:.0f} s"
    if total < 7200:
        return f"soak {spent // 60:.0f} of {total // 60:.0f} min"
    return f"soak {duration_text(elapsed)} of {duration_text(soak)}"


def _remaining(soak: timedelta, reached_at: datetime | None, now: datetime) -> timedelta:
    if reached_at is None:
        return timedelta(0)
    return max(timedelta(0), reached_at + soak - now)


def _in(span: timedelta) -> str:
    """'in 12 min', 'in 40 s' (rounded up: 'in 0 s' never shows)."""
    seconds = span.total_seconds()
    if seconds < 90:
        return f"in {max(1, round(seconds))} s"
    return f"in {format_age(seconds)}"


def plan_timeline(
    plan: RolloutPlan,
    state: FlagState,
    percentage: float,
    reached_at: datetime | None,
    events: Sequence[AutopilotEvent],
    now: datetime,
) -> Timeline:
    """`plan`'s steps for a flag now at `state` / `percentage`, there since `reached_at`
    (the newest applied change, None when the history has none); `events` newest first
    mark a step the autopilot rolled back from."""
    here = _where(state, percentage)
    rolled_from = {e.from_percentage: e for e in reversed(events) if e.kind in ("rollback", "kill")}
    points = sorted({*plan.steps, here})
    next_step = plan.next_step(here) if state is not FlagState.ENABLED else None
    steps: list[TimelineStep] = []
    for point in points:
        if point < here:
            steps.append(TimelineStep(point, StepState.DONE))
        elif point == here:
            steps.append(
                TimelineStep(
                    point,
                    StepState.CURRENT,
                    soak_progress(plan.soak, reached_at, now),
                    off_plan=point not in plan.steps,
                )
            )
        elif point > plan.stop_at:
            detail = f"the autopilot goes alone up to {plan.stop_at:g} %"
            steps.append(TimelineStep(point, StepState.PERSON, detail))
        elif point == next_step:
            steps.append(TimelineStep(point, StepState.NEXT, _next_detail(plan, reached_at, now)))
        else:
            steps.append(TimelineStep(point, StepState.LATER))
    marked = []
    for step in steps:
        event = rolled_from.get(step.percentage)
        if event is not None and step.state is not StepState.DONE:
            ago = format_age((now - event.at).total_seconds())
            verb = "killed" if event.kind == "kill" else "rolled back"
            words = f"{verb} from here {ago} ago"
            step = TimelineStep(
                step.percentage,
                step.state,
                f"{step.detail}; {words}" if step.detail else words,
                step.off_plan,
            )
        marked.append(step)
    return Timeline(tuple(marked), blocked_text(plan), reached_at)


def _next_detail(plan: RolloutPlan, reached_at: datetime | None, now: datetime) -> str:
    if plan.status is not PlanStatus.ACTIVE:
        return f"not while the plan is {plan.status}"
    left = _remaining(plan.soak, reached_at, now)
    if left > timedelta(0):
        return f"{_in(left)} if every gate passes"
    return "when every gate passes"


def blocked_text(plan: RolloutPlan) -> str:
    """Why the plan does not move on by itself now: its pause or abort reason, or what
    the last tick waited for; '' when it is on its way."""
    if plan.status is not PlanStatus.ACTIVE:
        return status_text(plan)
    decision = plan.last_decision
    if decision.startswith("waited: soak") and ";" not in decision:
        return ""  # only the soak: the timeline counts it down
    if decision.startswith(("waited", "next step")):
        return decision
    return ""


def status_text(plan: RolloutPlan) -> str:
    """'paused by olga: lunch', 'paused: no data for 10 ticks (…)', 'aborted by olga',
    'active'."""
    if plan.status is PlanStatus.ACTIVE:
        return "active"
    reason = plan.status_reason or str(plan.status)
    word = str(plan.status)
    if reason.startswith(word):
        return reason
    return f"{word}: {reason}"


def column_text(
    plan: RolloutPlan,
    state: FlagState,
    percentage: float,
    reached_at: datetime | None,
    now: datetime,
    last_event: AutopilotEvent | None = None,
) -> str:
    """The overview's Autopilot cell: '→ 25 % in 12 min', '→ 25 %: no data (…)',
    'paused by olga: lunch', 'holding at 50 %: 100 % waits for a person',
    'rolled back 25 → 5 % 3 min ago (paused)', 'plan aborted'."""
    if plan.status is PlanStatus.ABORTED:
        return "plan aborted"
    here = _where(state, percentage)
    moved = moved_words(plan, state, percentage)
    known = [t for t in (plan.status_at, plan.last_decision_at) if t is not None]
    if moved and known and reached_at is not None and reached_at <= max(known):
        moved = ""  # the row is older than what the plan knows (a cached overview)
    if moved:  # a person's change since: the plan's own last move is no longer the news
        if plan.status is PlanStatus.PAUSED:
            return f"plan paused; {moved}"
        return f"plan stale: {moved}; the next tick pauses it"
    if plan.status is PlanStatus.ACTIVE and state is FlagState.DISABLED:
        killed = killed_flag_words(plan)
        if killed is not None:
            return killed.short
    if plan.status is PlanStatus.PAUSED:
        lowered = (
            last_event is not None
            and last_event.kind in ("rollback", "kill")
            and plan.status_by == AUTOPILOT_ACTOR
            and plan.expected_percentage == last_event.to_percentage
        )
        if lowered and last_event is not None:
            verb = "killed" if last_event.kind == "kill" else "rolled back"
            ago = format_age((now - last_event.at).total_seconds())
            moved = f"{last_event.from_percentage:g} → {last_event.to_percentage:g} %"
            return f"{verb} {moved} {ago} ago (paused)"
        return status_text(plan)
    step = plan.next_step(here) if state is not FlagState.ENABLED else None
    if step is None:
        return f"holding at {here:g} %: the plan's last step"
    if step > plan.stop_at:
        return f"holding at {here:g} %: {step:g} % waits for a person"
    left = _remaining(plan.soak, reached_at, now)
    if left > timedelta(0):
        return f"→ {step:g} % {_in(left)}"
    blocked = blocked_text(plan)
    if blocked:  # what the last tick waited for, in its words
        return f"→ {step:g} %: {blocked.removeprefix('waited: ')}"
    return f"→ {step:g} % at the next tick"


@dataclass(frozen=True)
class FlagAt:
    """Where the overview shows a flag: its state, percentage and the last change's time."""

    state: FlagState
    percentage: float
    reached_at: datetime | None


def newest_events(events: Iterable[AutopilotEvent]) -> dict[int, AutopilotEvent]:
    """Per plan id, its newest event (`events` newest first, as the store gives them)."""
    newest: dict[int, AutopilotEvent] = {}
    for event in events:
        newest.setdefault(event.plan_id, event)
    return newest


def moved_words(plan: RolloutPlan, state: FlagState, percentage: float) -> str:
    """'the flag was changed since to disabled 0 % (the plan left it at rollout 10 %)'
    when it is no longer where the plan left it; '' when it is."""
    here, left = _where(state, percentage), _where(plan.expected_state, plan.expected_percentage)
    if here == left and (state is FlagState.DISABLED) == (
        plan.expected_state is FlagState.DISABLED
    ):
        return ""
    return (
        f"the flag was changed since to {state} {here:g} % (the plan left it at "
        f"{plan.expected_state} {left:g} %)"
    )


@dataclass(frozen=True)
class KilledFlagWords:
    """What an active plan does with a flag it left disabled: `short` for the overview's
    cell, `detail` (why, and what a person must do) for Flag detail."""

    short: str
    detail: str


def killed_flag_words(plan: RolloutPlan) -> KilledFlagWords | None:
    """What an active plan does with a flag it left disabled (killed), and what a person
    must do; None when the plan is not active on a disabled flag."""
    if plan.status is not PlanStatus.ACTIVE or plan.expected_state is not FlagState.DISABLED:
        return None
    first = plan.steps[0]
    if GuardName.EXPOSURE in plan.gates:
        return KilledFlagWords(
            f"waits for a person to advance it to {first:g} %",
            f"The flag is disabled (killed): the plan waits for a person to advance it to "
            f"{first:g} %. Its exposure gate needs split evaluations, which a disabled flag "
            f"has none of, so the autopilot never takes that step itself. Advance the flag "
            f"to {first:g} % by hand (⏫ Advance) and the plan goes on from there, or abort "
            "the plan.",
        )
    return KilledFlagWords(
        f"may switch it back on at {first:g} %",
        f"The flag is disabled (killed): at a tick where its gates pass, the autopilot "
        f"advances it to {first:g} %, switching it back on. To keep it off, pause or abort "
        "the plan.",
    )


def column_texts(
    plans: Iterable[RolloutPlan],
    flags: Mapping[str, FlagAt],
    events: Mapping[int, AutopilotEvent],
    now: datetime,
) -> dict[str, str]:
    """Per planned flag shown (`flags`), its Autopilot cell."""
    return {
        plan.flag: column_text(
            plan,
            flags[plan.flag].state,
            flags[plan.flag].percentage,
            flags[plan.flag].reached_at,
            now,
            events.get(plan.id),
        )
        for plan in plans
        if plan.flag in flags
    }


@dataclass(frozen=True)
class HeartbeatSummary:
    """The controller's heartbeat in words; `dead` says it is a warning, not a note."""

    dead: bool
    text: str


def heartbeat_summary(beat: Heartbeat | None, now: datetime) -> HeartbeatSummary:
    """'autopilot: leader host:pid, last tick 12 s ago' (', 40 s late' when lagging);
    when nobody ticks: 'the autopilot has not ticked for 4 min: plans are not being acted
    on', or when it never ran: 'no autopilot is running: start `…`'."""
    start = f"start `{START_AUTOPILOT}`"
    holder = code_span(beat.holder) if beat is not None else ""
    if beat is None:
        return HeartbeatSummary(True, f"no autopilot is running: {start}")
    if beat.last_tick_at is None:
        return HeartbeatSummary(
            True,
            f"the autopilot ({holder}) took the lead but never ticked: plans are not "
            f"being acted on ({start})",
        )
    ago = format_age(max(0.0, (now - beat.last_tick_at).total_seconds()))
    if beat.is_dead(now):
        return HeartbeatSummary(
            True,
            f"the autopilot has not ticked for {ago} (last leader {holder}): plans "
            f"are not being acted on ({start})",
        )
    text = f"autopilot: leader {holder}, last tick {ago} ago"
    lag = beat.lag_seconds(now) or 0.0
    if lag >= 1:
        text += f", {format_age(lag)} late"
    return HeartbeatSummary(False, text)


def event_rows(events: Sequence[AutopilotEvent], now: datetime) -> list[dict[str, str]]:
    """The recent events as table rows: When, Event ('rollback 25 → 5 %'), Why, Failing →
    acted (a rollback or kill: from the first tick that saw the gate failing to the change
    applied), Audit record."""
    rows = []
    for event in events:
        if event.kind == "pause":
            what = f"pause at {event.from_percentage:g} %"
        else:
            what = f"{event.kind} {event.from_percentage:g} → {event.to_percentage:g} %"
        mitigate = event.seconds_to_mitigate
        rows.append(
            {
                "When": f"{format_age((now - event.at).total_seconds())} ago",
                "Event": what,
                "Why": event.text,
                "Failing → acted": _acted_after(mitigate),
                "Audit record": event.audit_id or "–",
            }
        )
    return rows


def _acted_after(seconds: float | None) -> str:
    """How long after the first tick that saw the failure the change was applied."""
    if seconds is None:
        return "–"
    return "in the same tick" if seconds < 1 else f"{format_age(seconds)} later"


@dataclass(frozen=True)
class PlanForm:
    """A plan as typed on the page."""

    steps: str
    soak: str
    gates: tuple[str, ...]
    on_failure: OnFailure
    stop_at: float
    allowed_hours: str = ""

    @classmethod
    def of(cls, plan: RolloutPlan) -> PlanForm:
        """The form filled with `plan` (to change it)."""
        return cls(
            steps=",".join(f"{s:g}" for s in plan.steps),
            soak=_soak_words(plan.soak),
            gates=tuple(sorted(plan.gates)),
            on_failure=plan.on_failure,
            stop_at=plan.stop_at,
            allowed_hours=plan.allowed_hours.text if plan.allowed_hours else "",
        )


def _soak_words(soak: timedelta) -> str:
    """30 min → '30m', 45 s → '45s', 1 h 30 min → '1h30m' (what parse_duration reads)."""
    seconds = int(soak.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds or not text else "")


def read_plan_form(form: PlanForm) -> PlanOptions:
    """The typed plan as plan options; PlanInvalid naming every problem at once (each field
    that cannot be read, and what is wrong with those that can), so a person fixes them
    in one go. An empty set of gates is refused here: the autopilot would advance on
    nothing at all."""
    problems: list[str] = []
    steps: tuple[float, ...] | None = None
    soak: timedelta | None = None
    hours: AllowedHours | None = None
    try:
        steps = parse_steps(form.steps)
    except PlanInvalid as invalid:
        problems += invalid.problems
    try:
        soak = parse_duration(form.soak)
    except PlanInvalid as invalid:
        problems += invalid.problems
    if form.allowed_hours.strip():
        try:
            hours = AllowedHours.parse(form.allowed_hours.strip())
        except PlanInvalid as invalid:
            problems += invalid.problems
    # what can be read is checked too; what cannot stands in as a value with no problem
    problems += plan_problems(
        steps if steps is not None else (1.0,),
        soak if soak is not None else timedelta(0),
        form.gates,
        form.stop_at,
    )
    if problems:
        raise PlanInvalid(problems)
    assert steps is not None and soak is not None
    return PlanOptions(
        steps=steps,
        soak=soak,
        gates=parse_gates(form.gates),
        on_failure=form.on_failure,
        stop_at=form.stop_at,
        allowed_hours=hours,
    )


def change_words(seen: RolloutPlan | None, fresh: RolloutPlan | None) -> str | None:
    """What changed between the plan a person saw (None: no plan) and the plan now,
    naming who: None when only the controller's bookkeeping moved (its last decision,
    no-data count, next look): acting on the fresh plan is then acting on what the person
    saw."""
    if fresh is None:
        return "the plan was removed meanwhile"
    if seen is None:
        return (
            f"changed meanwhile by {fresh.created_by}: a plan was set ({fresh.text}), "
            f"{status_text(fresh)}"
        )
    if fresh.id != seen.id or fresh.created_at != seen.created_at:
        return (
            f"changed meanwhile by {fresh.created_by}: a new plan ({fresh.text}), "
            f"{status_text(fresh)}"
        )
    if fresh.status is not seen.status or fresh.status_reason != seen.status_reason:
        return f"changed meanwhile by {fresh.status_by or 'someone'}: the plan is now " + (
            status_text(fresh)
        )
    if (fresh.expected_state, fresh.expected_percentage) != (
        seen.expected_state,
        seen.expected_percentage,
    ):
        return (
            f"changed meanwhile by the autopilot: it moved the flag to "
            f"{fresh.expected_percentage:g} %"
        )
    if fresh.text != seen.text or fresh.gates != seen.gates:
        return f"changed meanwhile by {fresh.status_by or fresh.created_by}: {fresh.text}"
    return None


def backtest_rows(result: Backtest) -> list[dict[str, str]]:
    """A backtest as a table: a row per run of the same decision at the same step (every
    advance, rollback, kill or pause a row of its own), oldest first."""
    from app.autopilot.backtest import decision_runs

    return [
        {
            "From": f"{run.first.at:%m-%d %H:%M:%S}",
            "To": f"{run.last.at:%m-%d %H:%M:%S}",
            "Decision": str(run.last.move),
            "Ticks": str(run.ticks),
            "At": f"{run.last.percentage:g} %",
            "Why": run.last.decision.reason,
        }
        for run in decision_runs(result.decisions)
    ]
