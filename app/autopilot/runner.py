"""The autopilot controller's run loop (`rollout-dashboard autopilot` and the demo's
autopilot): a tick every interval until stopped, and the lines it says about each tick.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from app.autopilot.controller import LEASE, Controller, PlanOutcome, TickReport
from app.quoting import LONG_TEXT, printable
from app.rollout.exit_codes import ExitCode

__all__ = [
    "CHANGING",
    "database_unavailable",
    "decision_line",
    "run_controller",
    "tick_summary",
]


def database_unavailable(report: TickReport) -> bool:
    """Whether the tick could not read the plans or the lease (the metrics database is
    down): nothing was acted on."""
    if not report.leader:
        return not report.holder  # the lease could not even be read
    return not report.outcomes and any("no plan acted on" in n for n in report.notices)


#: the moves that changed a flag or a plan: printed as they happen
CHANGING = frozenset({"advance", "rollback", "kill", "pause"})


def run_controller(
    controller: Controller,
    stop: threading.Event,
    *,
    verbose: bool = False,
    on_signals: bool = False,
    out: Callable[[str], None] | None = None,
) -> int:
    """Tick every interval until `stop` is set (with `on_signals`: by SIGTERM or SIGINT
    too), printing each advance, rollback, kill and pause, a change of leader, and with
    `verbose` a summary of every tick; the lease is released on the way out. Exit 0."""
    say = out or _say
    if on_signals:

        def stopping(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
    interval = controller.config.interval.total_seconds()
    say(
        f"autopilot {controller.holder}: one tick every {interval:g} s "
        f"(lease {controller.config.lease_period.total_seconds():g} s); stop with Ctrl-C"
    )
    leading: bool | None = None
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = controller.tick()
            except Exception as error:  # a tick's failure must not end the controller
                say(f"tick failed: {type(error).__name__}: {error}")
            else:
                leading = _say_tick(report, leading, verbose, say)
            spent = time.monotonic() - started
            stop.wait(max(0.0, interval - spent))
    finally:
        controller.store.release_lease(LEASE, controller.holder, controller.clock())
    say(f"autopilot {controller.holder}: stopped, lease released")
    return ExitCode.DONE


def _say_tick(
    report: TickReport, leading: bool | None, verbose: bool, say: Callable[[str], None]
) -> bool:
    """Print what changed in one tick; returns whether this process leads now."""
    if report.leader != leading:
        if report.leader:
            say(f"{_clock(report.at)} leading: this process acts on the plans")
        elif report.holder:
            say(f"{_clock(report.at)} standing by: {printable(report.holder)} leads")
    for outcome in report.outcomes:
        if str(outcome.decision.move) in CHANGING:
            say(decision_line(outcome, report.at))
    if verbose:
        say(tick_summary(report))
        for notice in report.notices:
            say(f"  notice: {_shown(notice)}")
    elif database_unavailable(report):
        say(f"{_clock(report.at)} metrics database unavailable: no plan acted on")
    return report.leader


def decision_line(outcome: PlanOutcome, at: datetime | None = None) -> str:
    """'<env> <flag>: <move> [audit <id>] — <why>', with the time of the tick when given."""
    plan = outcome.plan
    audit = ""
    if outcome.applied is not None and outcome.applied.audit:
        audit = f" [audit {outcome.applied.audit[0].id}]"
    when = f"{_clock(at)} " if at is not None else ""
    return (
        f"{when}{plan.environment} {plan.flag}: {outcome.decision.move}{audit} — "
        f"{_shown(outcome.said)}"
    )


def tick_summary(report: TickReport) -> str:
    """One line per tick: the moves by kind, the queries sent and the time taken (or who
    leads, on standby)."""
    if not report.leader:
        who = printable(report.holder) if report.holder else "nobody (database unavailable)"
        return f"{_clock(report.at)} tick: standby, {who} leads"
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        move = str(outcome.decision.move)
        counts[move] = counts.get(move, 0) + 1
    moves = ", ".join(f"{n} {move}" for move, n in sorted(counts.items())) or "no active plan"
    return (
        f"{_clock(report.at)} tick: {len(report.outcomes)} plan(s): {moves}; "
        f"{report.queries} metric queries, {report.seconds:.2f} s"
    )


def _clock(at: datetime | None) -> str:
    return f"{at:%H:%M:%S}" if at is not None else ""


def _shown(text: str) -> str:
    """A reason, a decision or a problem in full (they can be long), on one line."""
    return printable(text, limit=LONG_TEXT)


def _say(line: str) -> None:
    print(line, flush=True)
