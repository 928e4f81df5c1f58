"""The phases over time: planned week vs actual start and finish, and the burn-up,
reconstructed from the rollout history (the audit log's *applied* changes).

Rules, all pure:

- **Project start** is the config's `phases.start` date; a config without one (the
  older plain list of phases) falls back to the date of the first applied change of
  the environment's history, or today when there is none. Phase *n* is planned for
  week *n* counted from it: days 7(n-1) .. 7(n-1)+6.
- **Replay**: each flag starts at the `from` percentage of its earliest applied change
  (a flag never changed stays at its configured percentage throughout), then takes the
  `to` percentage of every applied change in time order. A state change counts as its
  effective percentage (`enabled` = 100 %, `disabled` = 0 %).
- **Actual start**: the first time any flag of the phase was above 0 %: the first
  applied change that took one from 0 % to above 0 %, unless one of them was already
  above 0 % before its first recorded change (or is above 0 % in the config with no
  recorded change at all): the phase then *started before the history* and the date is
  unknown. **Actual finish**: the applied change after which every flag of the phase
  is at 100 %, the latest one if it was rolled back and completed again; none while the
  phase is not complete at the end of the history.
- **Burn-up**: each phase's progress (mean rollout share of its flags) before the first
  change, after every change of one of its flags, and now. The point at *now* is the
  configuration as it is, so edits made outside the dashboard show at the present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from app.analysis.health import Health
from app.analysis.progress import PhaseStatus, phase_progress
from app.audit import AuditEntry, Outcome
from app.flags.model import FlagConfig, FlagState

__all__ = [
    "AppliedChange",
    "BurnUpPoint",
    "FlagCondition",
    "PhaseSchedule",
    "ProjectStart",
    "ScheduleStatus",
    "StartSource",
    "applied_changes",
    "blocked_reasons",
    "burn_up",
    "phase_schedule",
    "project_start",
    "resolve_project_start",
]

_WEEK = timedelta(days=7)


@dataclass(frozen=True)
class AppliedChange:
    """One applied change of one flag, as effective percentages (0..100)."""

    at: datetime
    flag: str
    from_percentage: float
    to_percentage: float


class ScheduleStatus(StrEnum):
    NOT_DUE = "not_due"  # not finished, its planned week not over
    ON_TIME = "on_time"  # finished by the last day of its planned week
    LATE = "late"  # finished after it
    OVERDUE = "overdue"  # not finished and its planned week is over


@dataclass(frozen=True)
class PhaseSchedule:
    """Planned week vs actual of one phase; `planned_finish` is the week's last day."""

    phase: int
    name: str
    planned_week: int
    planned_start: date
    planned_finish: date
    actual_start: datetime | None
    actual_finish: datetime | None
    status: ScheduleStatus
    days_late: int
    #: a flag of the phase was above 0 % before its first recorded change: the phase
    #: started before the history and `actual_start` is None (unknown)
    started_before_history: bool = False


class StartSource(StrEnum):
    CONFIG = "config"  # the config's phases.start
    HISTORY = "history"  # the first applied change
    TODAY = "today"  # no start date and no history


@dataclass(frozen=True)
class ProjectStart:
    day: date
    source: StartSource


@dataclass(frozen=True)
class FlagCondition:
    """What the overview knows of one flag right now, for the phase blockers."""

    flag: str
    health: Health
    error_rate: float | None
    p99_seconds: float | None


@dataclass(frozen=True)
class BurnUpPoint:
    """A phase's progress (0..1) and flags at 100 % from `at` on."""

    at: datetime
    phase: int
    name: str
    progress: float
    flags_complete: int
    flags_total: int


def _effective(state: FlagState | None, percentage: float) -> float:
    if state == FlagState.ENABLED:
        return 100.0
    if state == FlagState.DISABLED:
        return 0.0
    return float(percentage)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def applied_changes(entries: Iterable[AuditEntry], environment: str) -> list[AppliedChange]:
    """The applied changes of `environment`, oldest first (pending, failed and refused
    actions changed nothing and are left out)."""
    found = [
        AppliedChange(
            _utc(e.at),
            e.flag,
            _effective(e.from_state, e.from_percentage),
            _effective(e.to_state, e.to_percentage),
        )
        for e in entries
        if e.outcome is Outcome.APPLIED and e.environment == environment
    ]
    return sorted(found, key=lambda c: c.at)


def project_start(
    changes: Sequence[AppliedChange], today: date, configured: date | None = None
) -> date:
    """The configured start date; else the date of the first applied change, or
    `today` without history."""
    return resolve_project_start(changes, today, configured).day


def resolve_project_start(
    changes: Sequence[AppliedChange], today: date, configured: date | None = None
) -> ProjectStart:
    """`project_start` with where it came from (config, history or today)."""
    if configured is not None:
        return ProjectStart(configured, StartSource.CONFIG)
    if changes:
        return ProjectStart(min(c.at for c in changes).date(), StartSource.HISTORY)
    return ProjectStart(today, StartSource.TODAY)


def _members(config: FlagConfig) -> list[tuple[int, str, tuple[str, ...]]]:
    return [(p.phase, p.name, p.flags) for p in phase_progress(config)]


def _first_known(config: FlagConfig, changes: Sequence[AppliedChange]) -> dict[str, float]:
    state = {key: flag.percentage for key, flag in config.flags.items()}
    for change in reversed(changes):  # newest first: the oldest `from` wins
        if change.flag in state:
            state[change.flag] = change.from_percentage
    return state


def _progress(state: dict[str, float], flags: Sequence[str]) -> tuple[float, int]:
    if not flags:
        return 0.0, 0
    values = [state[f] for f in flags]
    return sum(values) / (100.0 * len(values)), sum(1 for v in values if v >= 100.0)


def _actuals(
    config: FlagConfig, changes: Sequence[AppliedChange]
) -> dict[int, tuple[datetime | None, datetime | None, bool]]:
    """Per phase: (actual start, actual finish, started before the history)."""
    state = _first_known(config, changes)
    result: dict[int, tuple[datetime | None, datetime | None, bool]] = {}
    for number, _, flags in _members(config):
        start: datetime | None = None
        finish: datetime | None = None
        replay = {f: state[f] for f in flags}
        before_history = any(v > 0.0 for v in replay.values())
        for change in changes:
            if change.flag not in replay:
                continue
            if (
                not before_history
                and start is None
                and replay[change.flag] <= 0.0 < change.to_percentage
            ):
                start = change.at
            was_complete = all(v >= 100.0 for v in replay.values())
            replay[change.flag] = change.to_percentage
            complete = all(v >= 100.0 for v in replay.values())
            if complete and not was_complete:
                finish = change.at
            elif not complete:
                finish = None
        result[number] = (start, finish, before_history)
    return result


def phase_schedule(
    config: FlagConfig, changes: Sequence[AppliedChange], now: datetime
) -> list[PhaseSchedule]:
    """Planned week vs actual start and finish of every phase, in phase order; planned
    weeks count from `project_start` (the config's start date when it has one)."""
    today = _utc(now).date()
    begin = project_start(changes, today, config.phases_start)
    actuals = _actuals(config, changes)
    rows = []
    for progress in phase_progress(config):
        planned_start = begin + _WEEK * (progress.planned_week - 1)
        planned_finish = planned_start + timedelta(days=6)
        start, finish, before_history = actuals[progress.phase]
        if finish is not None:
            days_late = max(0, (finish.date() - planned_finish).days)
            status = ScheduleStatus.LATE if days_late else ScheduleStatus.ON_TIME
        else:
            days_late = max(0, (today - planned_finish).days)
            status = ScheduleStatus.OVERDUE if days_late else ScheduleStatus.NOT_DUE
        rows.append(
            PhaseSchedule(
                phase=progress.phase,
                name=progress.name,
                planned_week=progress.planned_week,
                planned_start=planned_start,
                planned_finish=planned_finish,
                actual_start=start,
                actual_finish=finish,
                status=status,
                days_late=days_late,
                started_before_history=before_history,
            )
        )
    return rows


def _point(
    at: datetime, number: int, name: str, flags: Sequence[str], state: dict[str, float]
) -> BurnUpPoint:
    progress, complete = _progress(state, flags)
    return BurnUpPoint(at, number, name, progress, complete, len(flags))


def burn_up(
    config: FlagConfig, changes: Sequence[AppliedChange], now: datetime
) -> list[BurnUpPoint]:
    """Every phase's progress over time, phase by phase, each series in time order."""
    now = _utc(now)
    state = _first_known(config, changes)
    points: list[BurnUpPoint] = []
    for number, name, flags in _members(config):
        replay = {f: state[f] for f in flags}
        if changes:
            points.append(_point(changes[0].at, number, name, flags, replay))
        for change in changes:
            if change.flag in replay:
                replay[change.flag] = change.to_percentage
                points.append(_point(change.at, number, name, flags, replay))
        present = {f: config.flags[f].percentage for f in flags}
        points.append(_point(now, number, name, flags, present))
    return points


def _condition_text(condition: FlagCondition) -> str:
    parts = []
    if condition.error_rate is not None:
        parts.append(f"errors {100 * condition.error_rate:.2f} %")
    if condition.p99_seconds is not None:
        parts.append(f"p99 {1000 * condition.p99_seconds:.0f} ms")
    return ", ".join(parts)


def _health_reasons(
    config: FlagConfig,
    flags: Sequence[str],
    conditions: Mapping[str, FlagCondition],
    max_error_rate: float | None,
) -> list[str]:
    found: list[str] = []
    for key in flags:
        condition = conditions.get(key)
        if condition is None:
            continue
        numbers = _condition_text(condition)
        if condition.health is Health.UNHEALTHY:
            found.append(f"{key} is unhealthy ({numbers})")
        rate = condition.error_rate
        if (
            max_error_rate is not None
            and rate is not None
            and rate > max_error_rate
            and config.flags[key].state is FlagState.ROLLOUT
        ):
            found.append(
                f"{key}: the error guard fails (errors {100 * rate:.2f} % > "
                f"{100 * max_error_rate:g} % allowed to advance)"
            )
    return found


def blocked_reasons(
    config: FlagConfig,
    entries: Iterable[AuditEntry] = (),
    environment: str = "",
    conditions: Mapping[str, FlagCondition] | None = None,
    max_error_rate: float | None = None,
) -> dict[int, tuple[str, ...]]:
    """Why each unfinished phase cannot move on: dependencies outside the phase not at
    100 % (for a blocked phase), flags whose newest action in `environment` was an
    advance refused by its guards or one waiting for approval, and — from `conditions`
    (the overview's live rows) — unhealthy flags and flags in rollout whose error ratio
    fails the advance guard's `max_error_rate`. Phases with no reason are left out."""
    newest: dict[str, AuditEntry] = {}
    for entry in entries:
        if entry.environment == environment and (
            entry.flag not in newest or _utc(entry.at) > _utc(newest[entry.flag].at)
        ):
            newest[entry.flag] = entry
    reasons: dict[int, tuple[str, ...]] = {}
    for progress in phase_progress(config):
        if progress.status is PhaseStatus.COMPLETE:
            continue
        found: list[str] = []
        if progress.status is PhaseStatus.BLOCKED:
            for key in progress.flags:
                for dep in config.flags[key].metadata.dependencies:
                    target = config.flags[dep]
                    if dep in progress.flags or target.percentage >= 100.0:
                        continue
                    where = f"phase {target.phase}" if target.phase is not None else "no phase"
                    found.append(f"{key} waits for {dep} ({where}, at {target.percentage:g} %)")
        for key in progress.flags:
            last = newest.get(key)
            if last is not None and last.outcome is Outcome.REFUSED:
                failed = [str(g.get("name", "?")) for g in last.guards if not g.get("passed")]
                # a refusal without a failed guard is a flag that had moved meanwhile
                why = f"failed guard: {', '.join(failed)}" if failed else "changed concurrently"
                found.append(
                    f"{key}: {last.action} to {last.to_percentage:g} % refused on "
                    f"{_utc(last.at):%Y-%m-%d} ({why})"
                )
            elif last is not None and last.outcome is Outcome.REQUESTED:
                request = last.reason.split(":", 1)[0]
                found.append(
                    f"{key}: {last.action} to {last.to_percentage:g} % waits for approval "
                    f"({request} by {last.actor})"
                )
        found.extend(_health_reasons(config, progress.flags, conditions or {}, max_error_rate))
        if found:
            reasons[progress.phase] = tuple(found)
    return reasons
