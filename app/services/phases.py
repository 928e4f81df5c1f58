"""What the Phases page shows: the configuration's phase progress joined with the
rollout history (planned vs actual, burn-up, blocked-by reasons), and its CSV export.

`load_phases` never fails because the metrics database is down: the history is then
empty (planned weeks count from the config's start date, or today without one; no
actual dates; the burn-up is the present alone) and a notice says so. Blockers include
the overview's unhealthy flags when its rows are passed in.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from app.analysis.phase_history import (
    BurnUpPoint,
    FlagCondition,
    PhaseSchedule,
    ScheduleStatus,
    StartSource,
    applied_changes,
    blocked_reasons,
    burn_up,
    phase_schedule,
    resolve_project_start,
)
from app.analysis.progress import PhaseProgress, PhaseStatus, phase_progress
from app.audit import AuditEntry, AuditLog
from app.flags.model import FlagConfig
from app.services.overview import ExternalEdit, FlagRow
from app.text import format_age

__all__ = [
    "BEFORE_HISTORY",
    "HISTORY_LIMIT",
    "PHASE_CSV_COLUMNS",
    "SOURCE",
    "PhasesView",
    "actual_start_text",
    "blocked_lines",
    "build_phases",
    "burn_up_frame",
    "flag_conditions",
    "load_phases",
    "outside_changes_table",
    "phase_status_text",
    "phase_table",
    "phase_table_csv",
    "schedule_text",
    "source_line",
    "timeline_frame",
]

SOURCE = "flag configuration + audit history"
#: More applied changes than a six-phase cleanup makes; the newest are kept.
HISTORY_LIMIT = 100_000
HISTORY_DOWN = (
    "metrics database unavailable: the audit history cannot be read, so actual start and "
    "finish and the burn-up are empty."
)

PHASE_CSV_COLUMNS = (
    "phase",
    "name",
    "planned_week",
    "planned_start",
    "planned_finish",
    "actual_start",
    "actual_finish",
    "schedule",
    "days_late",
    "status",
    "progress_percent",
    "flags_complete",
    "flags",
    "blocked_by",
    "reasons",
)


@dataclass(frozen=True)
class PhasesView:
    """Every panel of the Phases page for one environment."""

    environment: str
    generated_at: datetime
    progress: tuple[PhaseProgress, ...]
    schedule: tuple[PhaseSchedule, ...]
    burn_up: tuple[BurnUpPoint, ...]
    reasons: dict[int, tuple[str, ...]]
    project_start: date
    #: where the project start came from: the config, the first applied change, today
    project_start_source: StartSource
    history_available: bool
    applied_changes: int
    newest_change: datetime | None
    notices: tuple[str, ...] = field(default=())
    #: the oldest applied change in the history: where a phase that started before the
    #: history is known to have been under way already
    oldest_change: datetime | None = None

    @property
    def project_start_from_history(self) -> bool:
        return self.project_start_source is StartSource.HISTORY

    @property
    def history_age_seconds(self) -> float | None:
        if self.newest_change is None:
            return None
        return max(0.0, (self.generated_at - self.newest_change).total_seconds())


def build_phases(
    config: FlagConfig,
    entries: Sequence[AuditEntry],
    environment: str,
    now: datetime,
    history_available: bool = True,
    notices: Sequence[str] = (),
    rows: Sequence[FlagRow] = (),
    max_error_rate: float | None = None,
) -> PhasesView:
    """The view from a configuration and audit entries (any order, any environment);
    `rows` (the overview's) add unhealthy flags and failing error guards as blockers."""
    changes = applied_changes(entries, environment)
    start = resolve_project_start(changes, now.astimezone(UTC).date(), config.phases_start)
    return PhasesView(
        environment=environment,
        generated_at=now,
        progress=tuple(phase_progress(config)),
        schedule=tuple(phase_schedule(config, changes, now)),
        burn_up=tuple(burn_up(config, changes, now)),
        reasons=blocked_reasons(
            config, entries, environment, flag_conditions(rows), max_error_rate
        ),
        project_start=start.day,
        project_start_source=start.source,
        history_available=history_available,
        applied_changes=len(changes),
        newest_change=changes[-1].at if changes else None,
        notices=tuple(notices),
        oldest_change=changes[0].at if changes else None,
    )


def load_phases(
    config: FlagConfig,
    audit: AuditLog,
    environment: str,
    now: datetime,
    notices: Sequence[str] = (),
    rows: Sequence[FlagRow] = (),
    max_error_rate: float | None = None,
) -> PhasesView:
    """The view with the history read from `audit`; an unreadable database gives an
    empty history and a notice, never an error."""
    said = list(notices)
    entries: list[AuditEntry] = []
    available = audit.database_ok()
    if available:
        entries = audit.entries(limit=HISTORY_LIMIT)
    else:
        said.append(HISTORY_DOWN)
    return build_phases(config, entries, environment, now, available, said, rows, max_error_rate)


_START_FROM = {
    StartSource.CONFIG: "from the config",
    StartSource.HISTORY: "first applied change",
    StartSource.TODAY: "today",
}


def source_line(view: PhasesView) -> str:
    """The page's source line: where the numbers come from, how much history there is
    and how new it is, and where the project start (week 1) comes from."""
    newest = (
        f"newest change {format_age(view.history_age_seconds)} ago"
        if view.newest_change is not None
        else "no applied change yet"
    )
    history = (
        f"{view.applied_changes} applied change(s) in {view.environment} · {newest}"
        if view.history_available
        else "history unavailable"
    )
    start_from = _START_FROM[view.project_start_source]
    plan_note = (
        ""
        if view.project_start_source is StartSource.CONFIG
        else " · the config has no `phases.start` date"
    )
    return (
        f"Source: **{SOURCE}** · {history} · project start "
        f"**{view.project_start:%Y-%m-%d}** ({start_from}){plan_note}"
    )


def blocked_lines(view: PhasesView) -> list[str]:
    """One markdown list item per reason an unfinished phase is blocked, in phase order."""
    return [
        f"- **Phase {p.phase} · {p.name}** — {reason}"
        for p in view.progress
        for reason in view.reasons.get(p.phase, ())
    ]


def flag_conditions(rows: Sequence[FlagRow]) -> dict[str, FlagCondition]:
    """The overview's rows as the phase blockers read them, by flag key."""
    return {r.flag: FlagCondition(r.flag, r.health, r.error_rate, r.p99_seconds) for r in rows}


def actual_start_text(row: PhaseSchedule) -> str:
    """The actual start as shown: a moment, 'before the history', or a dash."""
    if row.started_before_history:
        return "before the history"
    return _moment(row.actual_start)


def phase_status_text(progress: PhaseProgress, row: PhaseSchedule) -> str:
    """The phase's status now, in words: 'rolling out', 'blocked', … A phase that did
    start (its actual start is known, or before the history) and has every flag back at
    0 % is 'stopped: every flag at 0 %', never 'not started'."""
    started = row.actual_start is not None or row.started_before_history
    if progress.status is PhaseStatus.NOT_STARTED and started:
        return "stopped: every flag at 0 %"
    return str(progress.status).replace("_", " ")


#: the timeline's bar of a phase that was under way before the history begins
BEFORE_HISTORY = "actual (started before the history)"


def _moment(value: datetime | None) -> str:
    return "–" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def schedule_text(row: PhaseSchedule) -> str:
    """'on time', '3 days late', 'overdue 1 day', 'not due'."""
    days = f"{row.days_late} day{'s' if row.days_late != 1 else ''}"
    return {
        ScheduleStatus.ON_TIME: "on time",
        ScheduleStatus.LATE: f"{days} late",
        ScheduleStatus.OVERDUE: f"overdue {days}",
        ScheduleStatus.NOT_DUE: "not due",
    }[row.status]


def phase_table(view: PhasesView) -> pd.DataFrame:
    """The phase table as displayed: one row per phase, Progress in percent (0..100)."""
    schedule = {row.phase: row for row in view.schedule}
    rows = []
    for p in view.progress:
        s = schedule[p.phase]
        rows.append(
            {
                "Phase": p.phase,
                "Name": p.name,
                "Planned week": p.planned_week,
                "Planned": f"{s.planned_start:%Y-%m-%d} → {s.planned_finish:%Y-%m-%d}",
                "Actual start": actual_start_text(s),
                "Actual finish": _moment(s.actual_finish),
                "Schedule": schedule_text(s),
                "Status": phase_status_text(p, s),
                "Progress": 100 * p.progress,
                "At 100 %": f"{p.flags_complete}/{len(p.flags)}",
                "Blocked by": ", ".join(p.blocked_by) or "–",
            }
        )
    columns = [
        "Phase",
        "Name",
        "Planned week",
        "Planned",
        "Actual start",
        "Actual finish",
        "Schedule",
        "Status",
        "Progress",
        "At 100 %",
        "Blocked by",
    ]
    return pd.DataFrame(rows, columns=columns)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _csv_start(row: PhaseSchedule, view: PhasesView) -> str:
    """The actual start in the CSV: ISO, or 'before <the history's first change>' (a
    bound, not a blank) for a phase under way before the history."""
    if row.started_before_history:
        oldest = view.oldest_change
        return f"before {_iso(oldest)}" if oldest is not None else "before the history"
    return _iso(row.actual_start)


def phase_table_csv(view: PhasesView) -> str:
    """The phase table for spreadsheets: ISO dates (UTC), lists joined with '; '."""
    schedule = {row.phase: row for row in view.schedule}
    rows = []
    for p in view.progress:
        s = schedule[p.phase]
        rows.append(
            (
                p.phase,
                p.name,
                p.planned_week,
                s.planned_start.isoformat(),
                s.planned_finish.isoformat(),
                _csv_start(s, view),
                _iso(s.actual_finish),
                str(s.status),
                s.days_late,
                str(p.status),
                round(100 * p.progress, 2),
                p.flags_complete,
                "; ".join(p.flags),
                "; ".join(p.blocked_by),
                "; ".join(view.reasons.get(p.phase, ())),
            )
        )
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=list(PHASE_CSV_COLUMNS)).to_csv(
        buffer, index=False, lineterminator="\n"
    )
    return buffer.getvalue()


def _label(phase: int, name: str) -> str:
    return f"{phase} · {name}"


def burn_up_frame(view: PhasesView) -> pd.DataFrame:
    """at, Phase (label), Progress (percent), At 100 % — for a step line per phase."""
    return pd.DataFrame(
        {
            "at": [p.at for p in view.burn_up],
            "Phase": [_label(p.phase, p.name) for p in view.burn_up],
            "Progress": [100 * p.progress for p in view.burn_up],
            "At 100 %": [f"{p.flags_complete}/{p.flags_total}" for p in view.burn_up],
        },
        columns=["at", "Phase", "Progress", "At 100 %"],
    )


def timeline_frame(view: PhasesView) -> pd.DataFrame:
    """Phase, Kind (planned / actual), Start, Finish for a Gantt chart. A planned bar
    covers its whole week; an actual bar runs to its finish, or to now while open."""
    rows = []
    for s in view.schedule:
        label = _label(s.phase, s.name)
        start = datetime.combine(s.planned_start, datetime.min.time(), UTC)
        rows.append((label, "planned", start, start + timedelta(days=7), schedule_text(s)))
        if s.actual_start is not None:
            end = s.actual_finish or view.generated_at
            kind = "actual" if s.actual_finish is not None else "actual (open)"
            rows.append((label, kind, s.actual_start, end, schedule_text(s)))
        elif s.started_before_history:  # drawn from where the history begins
            since = view.oldest_change or datetime.combine(
                view.project_start, datetime.min.time(), UTC
            )
            end = s.actual_finish or view.generated_at
            rows.append((label, BEFORE_HISTORY, min(since, end), end, schedule_text(s)))
    return pd.DataFrame(rows, columns=["Phase", "Kind", "Start", "Finish", "Schedule"])


def outside_changes_table(
    changes: Sequence[ExternalEdit], config: FlagConfig, now: datetime
) -> pd.DataFrame:
    """The changes made in the flag server itself (Unleash's UI or API), newest first:
    When, Phase, Flag, Change ('changed in Unleash by olga: rollout 5 % → 25 %')."""
    phases = {key: flag.phase for key, flag in config.flags.items()}
    return pd.DataFrame(
        {
            "When": [f"{format_age((now - c.at).total_seconds())} ago" for c in changes],
            "Phase": [str(phases.get(c.flag) or "–") for c in changes],
            "Flag": [c.flag for c in changes],
            "Change": [c.label for c in changes],
        }
    )
