"""A rollout plan: the steps a flag climbs on its own, what gates a step, and what a
failure does. Pure values and their validation; `store` keeps them, `decide` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import RolloutError
from app.flags.model import FlagState
from app.rollout.guards import ADVANCE_GUARDS, GuardName

__all__ = [
    "ALL_GATES",
    "AUTOPILOT_ACTOR",
    "DEFAULT_GATES",
    "REQUIRED_GATES",
    "AllowedHours",
    "OnFailure",
    "PlanInvalid",
    "PlanOptions",
    "PlanStatus",
    "RolloutPlan",
    "parse_duration",
    "parse_gates",
    "parse_steps",
    "plan_problems",
    "plan_warnings",
]

#: the actor of every change the autopilot makes
AUTOPILOT_ACTOR = "autopilot"

#: the six advance guards (`app.rollout.guards`), in their order, your own guardrails
#: (every one of `ROLLOUT_GUARDRAILS_FILE` that judges the flag), then the canary verdict
ALL_GATES = (*ADVANCE_GUARDS, GuardName.GUARDRAIL, GuardName.CANARY)
DEFAULT_GATES = frozenset((*ADVANCE_GUARDS, GuardName.GUARDRAIL))
#: gates every plan has: without them the autopilot would advance blind or unsoaked
REQUIRED_GATES = (GuardName.DATA_FRESH, GuardName.ERROR_RATE, GuardName.SOAK_TIME)

_MAX_SOAK = timedelta(days=7)
_MAX_STEPS = 20


class OnFailure(StrEnum):
    """What a gate that failed on data does: one step back, off, or hold for a person."""

    ROLLBACK = "rollback"
    KILL = "kill"
    PAUSE = "pause"


class PlanStatus(StrEnum):
    """active → paused ↔ active; any → aborted (the flag stays where it is)."""

    ACTIVE = "active"
    PAUSED = "paused"
    ABORTED = "aborted"


class PlanInvalid(RolloutError, ValueError):
    """A plan as typed cannot be kept: `problems` says each thing wrong."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class AllowedHours:
    """When the autopilot may advance (a rollback never waits for them): on `days`
    (0 = Monday) from `start` to `end` local time in `timezone`."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str = "UTC"

    def allows(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    @property
    def text(self) -> str:
        """'mon-fri 09:00-17:00 Europe/Berlin'."""
        days = sorted(self.days)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            named = f"{_DAY_NAMES[days[0]]}-{_DAY_NAMES[days[-1]]}"
        else:
            named = ",".join(_DAY_NAMES[d] for d in days)
        return f"{named} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"

    def as_json(self) -> dict[str, Any]:
        return {
            "days": sorted(self.days),
            "start": f"{self.start:%H:%M}",
            "end": f"{self.end:%H:%M}",
            "timezone": self.timezone,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AllowedHours:
        return cls(
            frozenset(int(d) for d in document["days"]),
            time.fromisoformat(str(document["start"])),
            time.fromisoformat(str(document["end"])),
            str(document.get("timezone", "UTC")),
        )

    @classmethod
    def parse(cls, text: str) -> AllowedHours:
        """'mon-fri 09-17 Europe/Berlin' or 'mon,wed 09:30-17:00' (UTC when no zone);
        PlanInvalid naming what is wrong."""
        words = text.split()
        found = (
            re.fullmatch(r"(\d{1,2}(?::\d{2})?)-(\d{1,2}(?::\d{2})?)", words[1])
            if len(words) in (2, 3)
            else None
        )
        if found is None:
            raise PlanInvalid(
                [f"allowed hours {text!r}: write them as 'mon-fri 09-17 Europe/Berlin'"]
            )
        days = _days(words[0].lower())
        start, end = _clock(found.group(1)), _clock(found.group(2))
        zone = words[2] if len(words) == 3 else "UTC"
        problems = []
        if days is None:
            problems.append(f"allowed hours: unknown days {words[0]!r} (mon … sun)")
        if start is None or end is None or (end <= start and end != time(0)):
            problems.append(f"allowed hours: {words[1]} is not a daytime span")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"allowed hours: unknown time zone {zone!r}")
        if problems:
            raise PlanInvalid(problems)
        assert days is not None and start is not None and end is not None
        if end == time(0):  # '-24': to the end of the day
            end = time(23, 59, 59, 999999)
        return cls(days, start, end, zone)


def _days(text: str) -> frozenset[int] | None:
    days: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if not all(end in _DAY_NAMES for end in ends) or len(ends) > 2:
            return None
        first, last = _DAY_NAMES.index(ends[0]), _DAY_NAMES.index(ends[-1])
        if last < first:
            return None
        days.update(range(first, last + 1))
    return frozenset(days) or None


def _clock(text: str) -> time | None:
    hours, _, minutes = text.partition(":")
    h, m = int(hours), int(minutes or 0)
    if h == 24 and m == 0:
        return time(0)
    if not (0 <= h < 24 and 0 <= m < 60):
        return None
    return time(h, m)


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What a person chooses for a plan, as `plan set` and the plan form read it: the
    steps, the soak at each, the gates (None: the flag's `default_gates`), what a failure
    the data proves does, the highest step the autopilot takes alone, and when it may
    advance."""

    steps: tuple[float, ...]
    soak: timedelta
    gates: frozenset[GuardName] | None = None
    on_failure: OnFailure = OnFailure.ROLLBACK
    stop_at: float = 50.0
    allowed_hours: AllowedHours | None = None
    #: judged and recorded every tick ("would have rolled back at 14:02: …"), never acts
    dry_run: bool = False
    #: false actions per plan-day its gates may take on a healthy flag (None: the
    #: setting, ROLLOUT_FALSE_ACTION_BUDGET)
    budget: float | None = None


@dataclass(frozen=True)
class RolloutPlan:
    """A flag's plan in one environment, and where the autopilot is with it.

    `expected_state` / `expected_percentage` are where the autopilot last left the flag
    (or found it when the plan was set or resumed): a flag found elsewhere was changed by
    someone else, and the plan pauses. `actions_taken` numbers the autopilot's actions:
    with the plan's id it makes each action's idempotency key, so a retried tick never
    applies a step twice."""

    flag: str
    environment: str
    steps: tuple[float, ...]
    soak: timedelta
    created_by: str
    created_at: datetime
    expected_state: FlagState
    expected_percentage: float
    gates: frozenset[GuardName] = DEFAULT_GATES
    on_failure: OnFailure = OnFailure.ROLLBACK
    stop_at: float = 50.0
    allowed_hours: AllowedHours | None = None
    status: PlanStatus = PlanStatus.ACTIVE
    status_reason: str = ""
    status_by: str = ""
    status_at: datetime | None = None
    actions_taken: int = 0
    ticks_without_data: int = 0
    #: the first tick that saw a gate failing on data in this failure (None: none now)
    failing_since: datetime | None = None
    last_decision: str = ""
    last_decision_at: datetime | None = None
    next_at: datetime | None = None
    version: int = 1
    #: the OS account behind a terminal that set the plan ('' otherwise)
    created_account: str = ""
    #: a dry run: decides every tick and records what it would have done, never acts
    dry_run: bool = False
    #: this plan's false-action budget per plan-day (None: the setting's)
    budget: float | None = None
    id: int = field(default=0, compare=False)

    @property
    def is_active(self) -> bool:
        return self.status is PlanStatus.ACTIVE

    def next_step(self, current: float) -> float | None:
        """The plan's first step above `current`; None at or above its last step."""
        return next((step for step in self.steps if step > current), None)

    def previous_step(self, current: float) -> float:
        """The plan's last step below `current`, or 0 below its first."""
        below = [step for step in self.steps if step < current]
        return max(below) if below else 0.0

    def action_key(self, action: str, to: float) -> str:
        """The idempotency key of the plan's next action: the same for a retried tick,
        another once the action was taken."""
        return f"autopilot-{self.id}-{self.actions_taken + 1}-{action}-{to:g}"[:64]

    @property
    def text(self) -> str:
        """'1 → 5 → 25 → 50 %, soak 30 min, on failure rollback, alone up to 50 %'."""
        steps = " → ".join(f"{s:g}" for s in self.steps)
        hours = f", advances {self.allowed_hours.text}" if self.allowed_hours else ""
        dry = f", budget {self.budget:g} false actions per plan-day" if self.budget else ""
        dry += ", dry run: never acts" if self.dry_run else ""
        return (
            f"{steps} %, soak {duration_text(self.soak)}, on failure {self.on_failure}, "
            f"alone up to {self.stop_at:g} %{hours}{dry}"
        )


def duration_text(span: timedelta) -> str:
    """'30 min', '45 s', '2 h', '1 h 30 min'."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


_DURATION = re.compile(r"(\d{1,6}(?:\.\d+)?)\s*(s|m|min|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'30m', '45s', '1h30m', '2h', '1d'; PlanInvalid for anything else."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise PlanInvalid([f"soak {text!r}: write it as 30m, 45s, 2h or 1h30m"])
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def parse_steps(text: str | Iterable[float]) -> tuple[float, ...]:
    """'1,5,25,50' (or numbers) as percentages; PlanInvalid when not numbers."""
    if isinstance(text, str):
        items = [item.strip().rstrip("%").strip() for item in text.split(",") if item.strip()]
        try:
            return tuple(float(item) for item in items)
        except ValueError:
            raise PlanInvalid([f"steps {text!r}: write them as 1,5,25,50"]) from None
    return tuple(float(item) for item in text)


def parse_gates(names: Iterable[str]) -> frozenset[GuardName]:
    """Gate names as typed ('data_fresh', …) as gates; PlanInvalid naming the unknown
    ones (`plan_problems` names them too, with everything else wrong)."""
    chosen = set(names)
    unknown = _unknown_gates(chosen)
    if unknown:
        raise PlanInvalid([unknown])
    return frozenset(GuardName(name) for name in chosen)


def _unknown_gates(chosen: set[str]) -> str:
    unknown = sorted(chosen - set(ALL_GATES))
    return f"unknown gates {', '.join(unknown)} (known: {', '.join(ALL_GATES)})" if unknown else ""


def plan_problems(
    steps: Sequence[float],
    soak: timedelta,
    gates: Iterable[str],
    stop_at: float,
) -> list[str]:
    """Everything wrong with a plan's numbers, each in words (empty: it can be kept);
    `gates` as typed, known or not."""
    problems = []
    if not steps:
        problems.append("a plan needs at least one step")
    elif len(steps) > _MAX_STEPS:
        problems.append(f"at most {_MAX_STEPS} steps")
    out_of_range = [problem for problem in map(_step_problem, steps) if problem]
    problems += list(dict.fromkeys(out_of_range))
    if not out_of_range and list(steps) != sorted(set(steps)):
        problems.append("steps must rise, each once (1,5,25,50)")
    if not timedelta(0) <= soak <= _MAX_SOAK:
        problems.append("the soak must be between 0 and 7 days")
    chosen = set(gates)
    missing = [gate for gate in REQUIRED_GATES if gate not in chosen]
    if missing:
        problems.append(
            f"{', '.join(REQUIRED_GATES)} are always gates: without them the autopilot "
            f"would advance blind or unsoaked (missing: {', '.join(missing)})"
        )
    unknown = _unknown_gates(chosen)
    if unknown:
        problems.append(unknown)
    if not (0 < stop_at <= 100) or stop_at != stop_at:
        problems.append("the highest step the autopilot may take alone must be within 0..100 %")
    return problems


def _step_problem(step: float) -> str:
    """What is wrong with one step ('' if nothing): every step is above 0 and at most 100 %."""
    if step != step:
        return "a step is not a number: every step must be above 0 and at most 100 %"
    if step > 100:
        return f"step {step:g} % is above 100 %"
    if step <= 0:
        return f"step {step:g} % is not above 0 %: a step must serve someone"
    return ""


def plan_warnings(options: PlanOptions) -> list[str]:
    """What a valid plan does that a person may not expect, each in words (empty: nothing).

    A soak of 0 is kept, not refused: the required gates (fresh data, error rate) still
    judge every step, and a zero soak is how a rehearsal climbs a ladder at once. But it
    must never go unnoticed, so the page and `plan set` both say it."""
    if options.soak <= timedelta(0):
        return [
            "soak 0 s: each step is taken at the first tick its other gates pass, with no "
            "time at the step to watch it (write 30m to soak each step for 30 minutes)"
        ]
    return []
