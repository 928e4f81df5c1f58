"""The autopilot controller's run loop (`rollout-dashboard autopilot` and the demo's
autopilot): a tick every interval until stopped, and the lines it says about each tick
(plain, or with `log_format` json one object per line carrying the flag, environment,
actor and audit id). Every tick is counted in `app.autopilot.telemetry`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any, Protocol

from app.autopilot.controller import LEASE, Controller, PlanOutcome, TickReport
from app.autopilot.store import PlanCensus, PlansUnavailable
from app.autopilot.telemetry import AutopilotMetrics
from app.logs import say as say_line
from app.quoting import LONG_TEXT, printable
from app.rollout.exit_codes import ExitCode

__all__ = [
    "CHANGING",
    "database_unavailable",
    "decision_fields",
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


class Say(Protocol):
    def __call__(self, text: str, /, **fields: Any) -> None: ...


#: the moves that changed a flag or a plan: printed as they happen
CHANGING = frozenset({"advance", "rollback", "kill", "pause"})


def run_controller(
    controller: Controller,
    stop: threading.Event,
    *,
    verbose: bool = False,
    on_signals: bool = False,
    out: Callable[[str], None] | None = None,
    metrics: AutopilotMetrics | None = None,
    metrics_port: int | None = None,
    metrics_address: str = "127.0.0.1",
    after_leading_tick: Callable[[], object] | None = None,
    log_format: str = "text",
) -> int:
    """Tick every interval until `stop` is set (with `on_signals`: by SIGTERM or SIGINT
    too), printing each advance, rollback, kill and pause, a change of leader, and with
    `verbose` a summary of every tick; the lease is released on the way out. Every tick
    is counted in `metrics`, served on `metrics_port` when given; `after_leading_tick`
    runs after each tick this process led (the notifications handed over to it). Exit 0."""
    say = _sayer(out, log_format)
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
    if metrics is not None and metrics_port is not None:
        metrics.serve(metrics_port, metrics_address)
        say(
            f"autopilot {controller.holder}: metrics on "
            f"http://{metrics_address}:{metrics_port}/metrics"
        )
    leading: bool | None = None
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = controller.tick()
            except Exception as error:  # a tick's failure must not end the controller
                say(f"tick failed: {type(error).__name__}: {error}", level="error")
                if metrics is not None:
                    metrics.tick_failed(time.monotonic() - started)
            else:
                leading = _say_tick(report, leading, verbose, say)
                if metrics is not None:
                    metrics.tick_done(report, _census(controller) if report.leader else None)
                if report.leader and after_leading_tick is not None:
                    try:
                        after_leading_tick()
                    except Exception as error:  # never stops the controller
                        say(f"after the tick: {type(error).__name__}", level="error")
            spent = time.monotonic() - started
            stop.wait(max(0.0, interval - spent))
    finally:
        controller.store.release_lease(LEASE, controller.holder, controller.clock())
        if metrics is not None:
            metrics.leader.set(0)
    say(f"autopilot {controller.holder}: stopped, lease released")
    return ExitCode.DONE


def _census(controller: Controller) -> PlanCensus | None:
    """The plans by status for the leader's gauges; None when the database does not answer."""
    try:
        return controller.store.census()
    except PlansUnavailable:
        return None


def _sayer(out: Callable[[str], None] | None, log_format: str) -> Say:
    """`out` (plain lines, fields dropped), else stdout in `log_format`."""

    def said(text: str, /, **fields: Any) -> None:
        if out is not None:
            out(text)
        else:
            say_line(text, log_format=log_format, **fields)

    return said


def _say_tick(report: TickReport, leading: bool | None, verbose: bool, say: Say) -> bool:
    """Print what changed in one tick; returns whether this process leads now."""
    if report.leader != leading:
        if report.leader:
            say(f"{_clock(report.at)} leading: this process acts on the plans")
        elif report.holder:
            say(f"{_clock(report.at)} standing by: {printable(report.holder)} leads")
    for outcome in report.outcomes:
        if str(outcome.decision.move) in CHANGING:
            say(decision_line(outcome, report.at), **decision_fields(outcome))
    if verbose:
        say(tick_summary(report))
        for notice in report.notices:
            say(f"  notice: {_shown(notice)}", level="warning")
    elif database_unavailable(report):
        say(f"{_clock(report.at)} metrics database unavailable: no plan acted on", level="error")
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


def decision_fields(outcome: PlanOutcome) -> dict[str, str]:
    """The structured fields of a decision's line: flag, environment, actor, audit id
    (when an action was written), move."""
    tried = outcome.applied or outcome.attempted
    return {
        "flag": outcome.plan.flag,
        "environment": outcome.plan.environment,
        "actor": "autopilot",
        "audit_id": tried.audit[0].id if tried is not None and tried.audit else "",
        "move": str(outcome.decision.move),
    }


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
