"""`plan set|show|pause|resume|abort` and `autopilot`: rollout plans from a terminal.

`plan set` attaches a plan to a flag (steps, soak, gates, what a failure does, the
highest step the autopilot takes alone, allowed hours); `autopilot` runs the controller
that follows the plans until SIGTERM or SIGINT, or for one tick with `--once`;
`autopilot backtest` replays a plan (typed with `plan set`'s options, or the flag's stored
one) over the metrics history and lists what it would have decided, writing nothing
(`app.autopilot.backtest`).

Exit codes: 0 done; 1 refused (a role missing, an aborted plan); 2 bad input (every
problem named, nothing written) or no such plan; 3 the plan changed meanwhile (`plan
set --if-version`), or another process leads (`autopilot --once`); 4 the metrics
database, which holds the plans, is unavailable, or (`plan show`) no autopilot leads: the
plans are shown but nobody acts on them, as a required source being down is for the other
commands. With `--json`, stdout carries one document.

The autopilot is imported when a command runs, not when the parser is built: a
rollback never loads it.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from app.cli.arguments import (
    UsageError,
    cli_identity,
    instant,
    runtime_for,
    say_migrated,
)
from app.cli.output import print_json
from app.quoting import LONG_TEXT, printable, quoted
from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from app.autopilot.backtest import Backtest
    from app.autopilot.controller import Controller
    from app.autopilot.model import PlanOptions, RolloutPlan
    from app.autopilot.store import AutopilotEvent, Heartbeat, PlanStore
    from app.runtime import Runtime
    from app.settings import Settings

__all__ = ["add_autopilot_commands"]

_Value = TypeVar("_Value")

#: the events `plan show` lists per plan, newest first
RECENT_EVENTS = 5
#: the shortest and longest `--interval` (the setting's bounds)
MIN_INTERVAL, MAX_INTERVAL = 0.2, 3600.0


def _interval(text: str) -> float:
    """`--interval`: seconds between ticks; an argparse error (exit 2) otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text[:40]!r}") from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_INTERVAL:g} to {MAX_INTERVAL:g} seconds, got {text[:40]}"
        )
    return value


def add_autopilot_commands(subparsers: Any) -> None:
    """Register `plan` (set, show, pause, resume, abort) and `autopilot`."""
    plan = subparsers.add_parser("plan", help="rollout plans the autopilot follows")
    verbs = plan.add_subparsers(dest="verb", required=True, metavar="VERB")

    put = verbs.add_parser(
        "set",
        help="attach (or replace) a flag's rollout plan, active from where the flag is now",
        description="Attach a rollout plan to FLAG: the autopilot advances it step by step "
        "while every gate passes and the soak has elapsed, and acts on a gate that fails "
        "on data. Every problem with the values is named; nothing is written then (exit 2).",
    )
    put.add_argument("flag")
    put.add_argument("--env", dest="environment")
    _plan_arguments(put, required=True)
    put.add_argument(
        "--budget",
        default=None,
        help="false actions per plan-day this plan's gates may take on a healthy flag, "
        "0 … 1 exclusive (default: ROLLOUT_FALSE_ACTION_BUDGET)",
    )
    put.add_argument(
        "--dry-run",
        action="store_true",
        help="judge every tick and record what the plan would have done, never act",
    )
    put.add_argument(
        "--if-version",
        type=int,
        default=None,
        metavar="N",
        help="replace the plan only if it is still at version N (0: only if there is none)",
    )
    _person_options(put, reason=False)
    put.set_defaults(run=_run_plan_set)

    show = verbs.add_parser(
        "show",
        help="the plans with where they are, the next step and the last decision (exit 4 "
        "when no autopilot leads)",
    )
    show.add_argument("flag", nargs="?")
    show.add_argument("--env", dest="environment")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_run_plan_show)

    for verb, said in (
        ("pause", "hold a plan where the flag is: the autopilot changes nothing until resumed"),
        ("resume", "make a plan active again from where the flag is now"),
        ("abort", "end a plan for good; the flag stays where it is"),
    ):
        moving = verbs.add_parser(verb, help=said)
        moving.add_argument("flag")
        moving.add_argument("--env", dest="environment")
        _person_options(moving, reason=True)
        moving.set_defaults(run=_run_plan_move, verb=verb)

    autopilot = subparsers.add_parser(
        "autopilot",
        help="run the controller that follows the rollout plans (until SIGTERM / Ctrl-C)",
        description="Run the autopilot: one tick every interval, by the one process holding "
        "the lease in the metrics database (start several: one leads, the others stand by). "
        "Prints a line for each advance, rollback, kill or pause.",
    )
    autopilot.add_argument(
        "--once",
        action="store_true",
        help="run one tick and print every plan's decision (exit 0 as leader, 3 when another "
        "process leads, 4 when the metrics database is unavailable)",
    )
    autopilot.add_argument(
        "--interval",
        type=_interval,
        default=None,
        metavar="SECONDS",
        help="seconds between ticks (default: ROLLOUT_AUTOPILOT_INTERVAL_SECONDS, 30)",
    )
    autopilot.add_argument(
        "--holder", default="", help="this process's name in the lease (default: host:pid)"
    )
    autopilot.add_argument("--verbose", action="store_true", help="a summary line every tick")
    autopilot.set_defaults(run=_run_autopilot)
    what_if = autopilot.add_subparsers(dest="autopilot_verb", metavar="VERB")
    backtest = what_if.add_parser(
        "backtest",
        help="what a plan would have done: the autopilot's own decisions replayed over the "
        "metrics history (writes nothing)",
        description="Replay the autopilot's own rule every tick from --from to --to over "
        "the metrics history (measured once) and print every decision it would have taken, "
        "for the plan given by --steps/--soak/… or the flag's stored plan. The traffic is "
        "what it was: each tick is judged with the share the flag really had, a simulated "
        "advance is recorded but changes no traffic, and the replay stops at the first "
        "rollback, kill or pause. Writes nothing (exit 2 for bad input, 4 when no metrics "
        "source answers).",
    )
    backtest.add_argument("flag")
    backtest.add_argument("--env", dest="environment")
    backtest.add_argument(
        "--from", dest="start", type=instant, required=True, help="ISO 8601 (UTC if no zone)"
    )
    backtest.add_argument(
        "--to", dest="end", type=instant, required=True, help="ISO 8601 (UTC if no zone)"
    )
    _plan_arguments(backtest, required=False)
    backtest.add_argument("--json", action="store_true")
    backtest.set_defaults(run=_run_backtest)


def _plan_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """A plan's options, as `plan set` reads them (`autopilot backtest` the same, none
    required there: without them the flag's stored plan is replayed)."""
    parser.add_argument("--steps", required=required, help="percentages, rising: 1,5,25,50")
    parser.add_argument("--soak", required=required, help="time at each step before the next: 30m")
    parser.add_argument(
        "--on-failure",
        default=None,
        help="what a gate failing on data does: rollback (one step), kill, pause (default "
        "rollback)",
    )
    parser.add_argument(
        "--stop-at",
        default=None,
        help="the highest step the autopilot takes alone, %% (default 50: the rest waits "
        "for a person)",
    )
    parser.add_argument(
        "--gates",
        default=None,
        help="comma-separated: data_fresh, error_rate, soak_time, dependencies, exposure, "
        "propagation, guardrail, canary (default: the six guards and your guardrails, plus "
        "canary for the canary flag)",
    )
    parser.add_argument(
        "--hours",
        default=None,
        help="when it may advance, e.g. 'mon-fri 09-17 Europe/Berlin' (a rollback never waits)",
    )


def _person_options(parser: argparse.ArgumentParser, *, reason: bool) -> None:
    if reason:
        parser.add_argument("--reason", default="", help="why (kept in the audit record)")
    parser.add_argument("--actor", default=None, help="who acts (default: the OS user)")
    parser.add_argument("--json", action="store_true")


# -- plan set ------------------------------------------------------------------------


def _run_plan_set(args: argparse.Namespace, settings: Settings) -> int:
    from app.autopilot.model import PlanInvalid, PlanStatus, plan_warnings
    from app.autopilot.store import PlanChanged, PlansUnavailable
    from app.rollout.roles import NotAuthorized

    opened = runtime_for(settings, args.environment)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    identity = cli_identity(settings, args.actor)
    snapshot = runtime.backend.load(environment)
    options, problems = _plan_options(args)
    if args.flag not in snapshot.config.flags:
        problems.append(f"unknown flag {quoted(args.flag)} in {environment}")
    if options is None or problems:
        return _invalid(problems)
    store = runtime.plans
    try:
        current = store.get(environment, args.flag)
        seen = current.version if current is not None else 0
        if args.if_version is not None and args.if_version != seen:
            return _changed(current, args.if_version)
        plan = runtime.set_plan(identity, environment, args.flag, options, seen_version=seen)
    except (NotAuthorized, PlanInvalid, PlanChanged, PlansUnavailable) as error:
        return _not_written(error, args.if_version)
    for warning in plan_warnings(options):
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print_json({"plan": _plan_json(plan, plan.expected_percentage, [])})
    else:
        replaced = "replaced" if current is not None else "set"
        print(f"plan {replaced} for {plan.flag} in {plan.environment}: {plan.text}")
        print(f"gates: {', '.join(sorted(plan.gates))}")
        if plan.status is PlanStatus.ACTIVE:
            print(
                f"active from {_where(plan.expected_state, plan.expected_percentage)}; the "
                "autopilot (`rollout-dashboard autopilot`) acts on it at its next tick"
            )
        else:  # where changes need a second person
            print(f"paused: {plan.status_reason} (`rollout-dashboard plan resume {plan.flag}`)")
    return ExitCode.DONE


def _plan_options(args: argparse.Namespace) -> tuple[PlanOptions | None, list[str]]:
    """`plan set`'s values, each checked on its own so that every problem is named at
    once: (the plan options, None when a value cannot be read; problems)."""
    from app.autopilot.model import (
        ALL_GATES,
        REQUIRED_GATES,
        AllowedHours,
        OnFailure,
        PlanInvalid,
        PlanOptions,
        parse_duration,
        parse_gates,
        parse_steps,
        plan_problems,
    )

    problems: list[str] = []
    neutral: dict[str, Any] = {
        "steps": (50.0,),
        "soak": timedelta(0),
        "gates": REQUIRED_GATES,
        "stop_at": 50.0,
    }

    def checked(name: str, parse: Callable[[], _Value]) -> _Value | None:
        try:
            value = parse()
        except PlanInvalid as error:
            problems.extend(error.problems)
            return None
        found = plan_problems(**(neutral | {name: value}))
        problems.extend(found)
        return None if found else value

    steps = checked("steps", lambda: parse_steps(args.steps))
    soak = checked("soak", lambda: parse_duration(args.soak))
    stop_at = checked("stop_at", lambda: _percentage(args.stop_at or "50"))
    gates = None
    if args.gates is not None:
        named = [g.strip() for g in args.gates.split(",") if g.strip()]
        if not named:
            problems.append(f"--gates names no gate (known: {', '.join(ALL_GATES)})")
        known = checked("gates", lambda: frozenset(named))
        gates = parse_gates(known) if known is not None else None
    on_failure = None
    typed = args.on_failure or str(OnFailure.ROLLBACK)
    try:
        on_failure = OnFailure(typed.strip().lower())
    except ValueError:
        problems.append(f"on failure {typed[:40]!r}: one of {', '.join(str(o) for o in OnFailure)}")
    hours = None
    if args.hours is not None:
        try:
            hours = AllowedHours.parse(args.hours)
        except PlanInvalid as error:
            problems.extend(error.problems)
    budget = _budget(getattr(args, "budget", None), problems)
    if problems or steps is None or soak is None or stop_at is None or on_failure is None:
        return None, problems
    options = PlanOptions(
        steps=steps,
        soak=soak,
        gates=gates,
        on_failure=on_failure,
        stop_at=stop_at,
        allowed_hours=hours,
        dry_run=bool(getattr(args, "dry_run", False)),
        budget=budget,
    )
    return options, problems


def _budget(text: str | None, problems: list[str]) -> float | None:
    """`--budget` as typed: a number above 0 and below 1, or None (the setting's)."""
    if text is None:
        return None
    try:
        budget = float(text.strip())
    except ValueError:
        budget = math.nan
    if not 0 < budget < 1:  # NaN too
        problems.append(
            f"budget {text[:40]!r}: false actions per plan-day, a number above 0 and below 1 "
            "(e.g. 0.01: one in 100 plan-days)"
        )
        return None
    return budget


def _percentage(text: str) -> float:
    from app.autopilot.model import PlanInvalid

    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        raise PlanInvalid([f"stop at {text[:40]!r}: a percentage such as 50"]) from None


def _not_written(error: Exception, seen: int | None) -> int:
    """The words on stderr and the exit code of a plan change that was refused (a role
    missing, a bad value, a plan changed since version `seen`) or could not be stored."""
    from app.autopilot.model import PlanInvalid
    from app.autopilot.store import PlanChanged
    from app.rollout.roles import NotAuthorized

    if isinstance(error, NotAuthorized):
        print(f"refused: {error}", file=sys.stderr)
        return ExitCode.REFUSED
    if isinstance(error, PlanInvalid):
        return _invalid(error.problems)
    if isinstance(error, PlanChanged):
        return _changed(error.current, seen)
    print(f"error: {error}", file=sys.stderr)  # PlansUnavailable
    return ExitCode.UNAVAILABLE


def _invalid(problems: Sequence[str]) -> int:
    for problem in problems:
        print(f"error: {_shown(problem)}", file=sys.stderr)
    print(f"{len(problems)} problem(s); nothing was written", file=sys.stderr)
    return ExitCode.USAGE


def _changed(current: RolloutPlan | None, seen: int | None) -> int:
    now = "there is none" if current is None else f"it is at version {current.version}"
    if current is not None and current.status_by:
        now += f", last changed by {printable(current.status_by)}"
    print(
        f"error: the plan changed meanwhile ({now}; you named version {seen}): nothing "
        "was written; look at `plan show` and try again",
        file=sys.stderr,
    )
    return ExitCode.CONFLICT


# -- plan pause / resume / abort -------------------------------------------------------


def _run_plan_move(args: argparse.Namespace, settings: Settings) -> int:
    from app.autopilot.model import PlanInvalid, PlanStatus
    from app.autopilot.service import abort_plan, pause_plan, resume_plan
    from app.autopilot.store import PlanChanged, PlansUnavailable
    from app.rollout.roles import NotAuthorized

    opened = runtime_for(settings, args.environment)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    identity = cli_identity(settings, args.actor)
    store = runtime.plans
    now = datetime.now(UTC)
    seen = 0
    try:
        plan = _plan_of(store, environment, args.flag)
        seen = plan.version
        if plan.status is PlanStatus.ABORTED:
            print(
                f"refused: the plan of {plan.flag} was aborted ({_shown(plan.status_reason)}): "
                "set a new plan with `rollout-dashboard plan set`",
                file=sys.stderr,
            )
            return ExitCode.REFUSED
        already = {"pause": PlanStatus.PAUSED, "resume": PlanStatus.ACTIVE}.get(args.verb)
        if plan.status is already:
            return _report_plan(plan, f"already {plan.status}: nothing changed", args.json)
        if args.verb == "pause":
            moved = pause_plan(store, runtime.audit, identity, plan, args.reason, now)
        elif args.verb == "resume":
            snapshot = runtime.backend.load(environment)
            moved = resume_plan(
                store,
                runtime.audit,
                identity,
                plan,
                snapshot,
                args.reason,
                now,
                approval_required=plan.environment in settings.approval_required_in,
            )
        else:
            moved = abort_plan(store, runtime.audit, identity, plan, args.reason, now)
    except (NotAuthorized, PlanInvalid, PlanChanged, PlansUnavailable) as error:
        return _not_written(error, seen)
    return _report_plan(moved, moved.status_reason, args.json)


def _plan_of(store: PlanStore, environment: str, flag: str) -> RolloutPlan:
    """The plan of `flag`; UsageError when it has none."""
    plan = store.get(environment, flag)
    if plan is None:
        raise UsageError(f"no rollout plan for {quoted(flag)} in {environment}")
    return plan


def _report_plan(plan: RolloutPlan, said: str, as_json: bool) -> int:
    if as_json:
        print_json({"message": said, "plan": _plan_json(plan, plan.expected_percentage, [])})
    else:
        print(f"{plan.flag} in {plan.environment}: plan {plan.status} — {_shown(said)}")
    return ExitCode.DONE


# -- plan show -----------------------------------------------------------------------


def _run_plan_show(args: argparse.Namespace, settings: Settings) -> int:
    from app.autopilot.controller import LEASE
    from app.autopilot.store import PlansUnavailable

    opened = runtime_for(settings, args.environment, read_only=True)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    store = runtime.plans
    try:
        if args.flag is not None:
            plans = [_plan_of(store, environment, args.flag)]
        else:
            plans = store.plans(environment)
        events = {p.id: store.events(p.id, limit=RECENT_EVENTS) for p in plans}
        beat = store.heartbeat(LEASE)
    except PlansUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    now = datetime.now(UTC)
    where = _current_percentages(runtime, environment)
    from app.services.autopilot import heartbeat_summary

    summary = heartbeat_summary(beat, now)  # the words the pages use
    # nobody acts on the plans: a script or a probe must not read this as all well
    code = ExitCode.UNAVAILABLE if summary.dead else ExitCode.DONE
    if args.json:
        print_json(
            {
                "environment": environment,
                "controller": _heartbeat_json(beat, now),
                "plans": [
                    _plan_json(p, where.get(p.flag, p.expected_percentage), events[p.id])
                    for p in plans
                ],
            }
        )
        if summary.dead:
            print(f"warning: {summary.text.replace('`', '')}", file=sys.stderr)
        return code
    print(("WARNING: " if summary.dead else "") + summary.text.replace("`", ""))
    if not plans:
        print(f"no rollout plans in {environment}")
    for plan in plans:
        _print_plan(plan, where.get(plan.flag, plan.expected_percentage), events[plan.id], now)
    return code


def _current_percentages(runtime: Runtime, environment: str) -> dict[str, float]:
    """Where each flag is now (the plan keeps where the autopilot last left it)."""
    from app.flags.loader import ConfigInvalid
    from queries.source import SourceUnavailable

    try:
        flags = runtime.backend.load(environment).config.flags
    except (ConfigInvalid, SourceUnavailable, OSError):
        return {}
    return {key: flag.percentage for key, flag in flags.items()}


def _next_step(plan: RolloutPlan, percentage: float) -> tuple[float | None, bool]:
    """The plan's next step from `percentage`, and whether a person takes it."""
    step = plan.next_step(percentage)
    return step, step is not None and step > plan.stop_at


def _print_plan(
    plan: RolloutPlan, percentage: float, events: Sequence[AutopilotEvent], now: datetime
) -> None:
    print()
    print(f"{plan.flag} ({plan.environment}): {plan.status}, at {percentage:g} %")
    print(f"  plan       {plan.text} (version {plan.version}, set by {plan.created_by})")
    print(f"  gates      {', '.join(sorted(plan.gates))}")
    if plan.status_reason and not plan.is_active:
        print(f"  why        {_shown(plan.status_reason)}")
    step, by_person = _next_step(plan, percentage)
    if step is None:
        nxt = "none: at the plan's last step"
    elif by_person:
        nxt = f"{step:g} % waits for a person (alone up to {plan.stop_at:g} %)"
    elif not plan.is_active:
        nxt = f"{step:g} % once a person resumes the plan"
    elif plan.next_at is not None:
        nxt = f"{step:g} %, not before {plan.next_at:%H:%M:%S} UTC ({_in(plan.next_at, now)})"
    else:
        nxt = f"{step:g} %"
    print(f"  next step  {nxt}")
    if plan.last_decision:
        at = f"{plan.last_decision_at:%Y-%m-%d %H:%M:%S} UTC: " if plan.last_decision_at else ""
        print(f"  decided    {at}{_shown(plan.last_decision)}")
    for event in events:
        mitigated = event.seconds_to_mitigate
        took = (
            f" (applied {mitigated:.0f} s after the first failing tick)"
            if mitigated is not None
            else ""
        )
        audit = f" [audit {event.audit_id}]" if event.audit_id else ""
        print(
            f"  {event.at:%Y-%m-%d %H:%M:%S} {event.kind:<8} {event.from_percentage:g} → "
            f"{event.to_percentage:g} %{audit}{took}: {_shown(event.text)}"
        )


def _in(at: datetime, now: datetime) -> str:
    seconds = (at - now).total_seconds()
    return "due now" if seconds <= 0 else f"in {seconds:.0f} s"


def _heartbeat_json(beat: Heartbeat | None, now: datetime) -> dict[str, Any] | None:
    if beat is None:
        return None
    return {
        "holder": beat.holder,
        "acquired_at": beat.acquired_at.isoformat(),
        "expires_at": beat.expires_at.isoformat(),
        "last_tick_at": beat.last_tick_at.isoformat() if beat.last_tick_at else None,
        "last_tick_seconds": beat.last_tick_seconds,
        "interval_seconds": beat.interval_seconds,
        "ticks": beat.ticks,
        "lag_seconds": beat.lag_seconds(now),
        "dead": beat.is_dead(now),
    }


def _plan_json(
    plan: RolloutPlan, percentage: float, events: Sequence[AutopilotEvent]
) -> dict[str, Any]:
    step, by_person = _next_step(plan, percentage)
    return {
        "flag": plan.flag,
        "environment": plan.environment,
        "status": str(plan.status),
        "status_reason": plan.status_reason,
        "status_by": plan.status_by,
        "status_at": _iso(plan.status_at),
        "steps": list(plan.steps),
        "soak_seconds": plan.soak.total_seconds(),
        "gates": sorted(plan.gates),
        "on_failure": str(plan.on_failure),
        "stop_at": plan.stop_at,
        "allowed_hours": plan.allowed_hours.as_json() if plan.allowed_hours else None,
        "dry_run": plan.dry_run,
        "budget": plan.budget,
        "percentage": percentage,
        "expected": {
            "state": str(plan.expected_state),
            "percentage": plan.expected_percentage,
        },
        "next_step": step,
        "next_step_waits_for_a_person": by_person,
        "next_at": _iso(plan.next_at),
        "last_decision": plan.last_decision,
        "last_decision_at": _iso(plan.last_decision_at),
        "created_by": plan.created_by,
        "created_at": _iso(plan.created_at),
        "version": plan.version,
        "events": [_event_json(e) for e in events],
    }


def _event_json(event: AutopilotEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "kind": event.kind,
        "from_percentage": event.from_percentage,
        "to_percentage": event.to_percentage,
        "text": event.text,
        "gate": event.gate,
        "audit_id": event.audit_id or None,
        "seconds_to_mitigate": event.seconds_to_mitigate,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _where(state: object, percentage: float) -> str:
    return f"{state} {percentage:g} %"


# -- autopilot backtest --------------------------------------------------------------

#: the plan options of `autopilot backtest`: any of them given, the plan is the typed one
_PLAN_OPTIONS = ("steps", "soak", "on_failure", "stop_at", "gates", "hours")


def _run_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from app.autopilot.backtest import NoHistory
    from app.autopilot.model import PlanInvalid
    from app.autopilot.store import PlansUnavailable
    from queries.source import SourceUnavailable

    options = None
    if any(getattr(args, name) is not None for name in _PLAN_OPTIONS):
        if args.steps is None or args.soak is None:
            return _invalid(
                [
                    "give --steps and --soak for a plan of your own (or no plan option: the "
                    "flag's stored plan)"
                ]
            )
        options, problems = _plan_options(args)
        if options is None or problems:
            return _invalid(problems)
    opened = runtime_for(settings, args.environment, read_only=True)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    try:
        result = runtime.backtest(environment, args.flag, args.start, args.end, options)
    except PlanInvalid as error:
        return _invalid(error.problems)
    except ValueError as error:  # the span
        raise UsageError(str(error)) from None
    except (NoHistory, PlansUnavailable, SourceUnavailable) as error:
        print(f"error: {_shown(str(error))}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    for notice in result.notices:
        print(f"warning: {_shown(notice)}", file=sys.stderr)
    if args.json:
        print_json(result.as_json())
    else:
        _print_backtest(result)
    return ExitCode.DONE


def _print_backtest(result: Backtest) -> None:
    """The plan, a line per run of the same decision (every action its own), the end."""
    from app.autopilot.backtest import decision_runs

    print(
        f"backtest of {result.flag} in {result.environment}, {result.start:%Y-%m-%d %H:%M:%S}"
        f" → {result.end:%Y-%m-%d %H:%M:%S} UTC, from {result.plan.expected_percentage:g} %: "
        f"{result.plan.text}"
    )
    print(f"gates: {', '.join(sorted(result.plan.gates))}; measured once from {result.source}")
    for run in decision_runs(result.decisions):
        print(f"  {_shown(run.words)}")
    counted = ", ".join(
        f"{sum(d.move == move for d in result.actions)} {move}"
        for move in ("advance", "rollback", "kill", "pause")
    )
    print(f"{len(result.decisions)} ticks ({counted}); {result.stopped}")


# -- autopilot -----------------------------------------------------------------------


def _run_autopilot(args: argparse.Namespace, settings: Settings) -> int:
    from app.cli.output import print_configuration
    from app.runtime import open_runtime

    if not args.once:
        shown = settings
        if args.interval is not None:
            shown = settings.model_copy(update={"autopilot_interval_seconds": args.interval})
        print_configuration(shown, "autopilot")
    from app.logs import say

    log_format = str(settings.log_format)
    # the autopilot delivers its own notifications: none handed over
    runtime = open_runtime(settings, on_migrated=say_migrated)
    for notice in runtime.notices:
        say(f"warning: {notice}", log_format=log_format, level="warning", out=sys.stderr)
    if runtime.engine is None:
        say(
            "error: the autopilot needs the metrics database (plans, lease, audit), which is "
            "unavailable",
            log_format=log_format,
            level="error",
            out=sys.stderr,
        )
        return ExitCode.UNAVAILABLE
    controller = runtime.autopilot(holder=args.holder)
    if args.interval is not None:
        from dataclasses import replace

        controller.config = replace(controller.config, interval=timedelta(seconds=args.interval))
    if args.once:
        return _once(controller, runtime)
    from app.autopilot.runner import run_controller
    from app.autopilot.telemetry import AutopilotMetrics, MetricsPortUnavailable

    metrics = AutopilotMetrics()
    metrics.know_webhooks(settings.webhooks)
    runtime.notifier.watch(metrics.delivery_settled)
    stop = threading.Event()
    try:
        return run_controller(
            controller,
            stop,
            verbose=args.verbose,
            on_signals=True,
            metrics=metrics,
            metrics_port=settings.autopilot_metrics_port,
            metrics_address=settings.autopilot_metrics_address,
            # what terminal commands handed over: sent by the leader
            after_leading_tick=runtime.notifier.deliver_handed_over,
            log_format=log_format,
        )
    except MetricsPortUnavailable as error:  # taken by another process
        say(f"error: {error}", log_format=log_format, level="error", out=sys.stderr)
        return ExitCode.USAGE


def _once(controller: Controller, runtime: Runtime) -> int:
    """One tick; every plan's decision; as leader, the notifications terminal commands
    handed over are sent too. The lease is let go after it (a running controller takes
    over at once)."""
    from app.autopilot.controller import LEASE
    from app.autopilot.runner import database_unavailable, decision_line, tick_summary

    report = controller.tick()
    if report.leader:
        runtime.notifier.deliver_handed_over()
        controller.store.release_lease(LEASE, controller.holder, controller.clock())
    for notice in report.notices:
        print(f"warning: {notice}", file=sys.stderr)
    if database_unavailable(report):
        print("error: the metrics database is unavailable: no plan acted on", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    if not report.leader:
        print(
            f"another autopilot leads ({printable(report.holder)}): this process did nothing; "
            "it acts when that one stops or its lease runs out"
        )
        return ExitCode.CONFLICT
    if not report.outcomes:
        print(f"tick as {printable(report.holder)}: no active plan")
    for outcome in report.outcomes:
        print(decision_line(outcome))
    print(tick_summary(report))
    return ExitCode.DONE


def _shown(text: str) -> str:
    """A reason, a decision or a problem in full (they can be long), on one line."""
    return printable(text, limit=LONG_TEXT)
