"""`requests`, `approve`, `reject`, `cancel`: four-eyes change requests from a terminal.

Who approves or rejects is the OS user the command runs as, with the role
`ROLLOUT_ROLES` gives that name: `--actor` (or any prefix of it) is refused there with
exit 2 before anything is read or written, because a name typed on the command line is
not a second pair of eyes. `cancel` withdraws one's own request and accepts `--actor`,
as `advance` does, so that a request made under a name can be withdrawn under it.

Exit codes of a decision: 0 done (also: already approved or applied by you); 1 refused
(your own request, expired, already decided, guards failing now, a role missing); 2 bad
input or no such request; 3 the flag changed since the request; 4 the metrics database,
which holds the requests, is unavailable. With `--json`, stdout carries one document.

The approval machinery is imported when a command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.cli.arguments import (
    UsageError,
    cli_identity,
    open_cli_runtime,
    record_count,
    request_id,
)
from app.cli.output import print_json, print_result
from app.quoting import printable, quoted
from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from app.approvals import ChangeRequest, Decision
    from app.settings import Settings

__all__ = ["add_approval_commands"]

#: what `--actor` on approve / reject gets, after the command's name
ACTOR_REFUSED = (
    "--actor is refused: a self-declared name is not a second pair of eyes; "
    "this command acts as the OS user you are logged in as"
)


class _RefuseActor(argparse.Action):
    """`--actor` where only the OS user may act: exit 2 at once, whatever follows."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.exit(ExitCode.USAGE, f"{parser.prog}: error: {ACTOR_REFUSED}\n")


def add_approval_commands(subparsers: Any) -> None:
    """Register `requests`, `approve`, `reject` and `cancel` on `add_subparsers()`."""
    listing = subparsers.add_parser(
        "requests", help="change requests waiting for approval, newest first"
    )
    listing.add_argument("--env", dest="environment", help="only this environment")
    listing.add_argument("--all", action="store_true", help="also the decided ones")
    listing.add_argument("--limit", type=record_count, default=200)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_run_requests)

    approve = subparsers.add_parser(
        "approve",
        help="approve another operator's change request and apply it (guards checked now)",
        description="Approve change request ID and apply it with its guards checked again. "
        "Acts as your OS user; --actor is refused.",
    )
    approve.add_argument("id", metavar="ID")
    approve.add_argument("--comment", default="", help="why you approve (optional)")
    _refuse_actor(approve)
    approve.add_argument("--json", action="store_true")
    approve.set_defaults(run=_run_approve)

    reject = subparsers.add_parser(
        "reject",
        help="reject another operator's change request, saying why",
        description="Reject change request ID. Acts as your OS user; --actor is refused.",
    )
    reject.add_argument("id", metavar="ID")
    reject.add_argument("--reason", required=True, help="why (the requester reads it)")
    _refuse_actor(reject)
    reject.add_argument("--json", action="store_true")
    reject.set_defaults(run=_run_reject)

    cancel = subparsers.add_parser("cancel", help="withdraw your own change request")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--actor", default=None, help="the requester (default: the OS user)")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(run=_run_cancel)


def _refuse_actor(parser: argparse.ArgumentParser) -> None:
    # Defined (hidden) rather than left unknown: `--actor=x` and every prefix argparse
    # accepts (`--act x`) reach this refusal instead of an "unrecognized" message.
    parser.add_argument("--actor", nargs="?", action=_RefuseActor, help=argparse.SUPPRESS)


# -- listing ---------------------------------------------------------------------


def _run_requests(args: argparse.Namespace, settings: Settings) -> int:
    from app.approvals import ApprovalsUnavailable, RequestStatus

    runtime = open_cli_runtime(settings, read_only=True)
    environment: str | None = args.environment
    if environment is not None and environment not in runtime.environments():
        raise UsageError(f"unknown environment {quoted(environment)}")
    statuses = () if args.all else (RequestStatus.PENDING,)
    try:
        found = runtime.approvals.requests(
            environment=environment, statuses=statuses, limit=args.limit
        )
    except ApprovalsUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    if len(found) == args.limit:
        print(f"warning: showing the newest {args.limit}: see --limit", file=sys.stderr)
    if args.json:
        print_json({"requests": [change.as_json() for change in found]})
    elif not found:
        where = f" in {environment}" if environment else ""
        print(f"no {'' if args.all else 'pending '}change requests{where}")
    else:
        _print_requests(found, decided=args.all, now=datetime.now(UTC))
    return ExitCode.DONE


def _print_requests(found: Sequence[ChangeRequest], *, decided: bool, now: datetime) -> None:
    header = ["id", "status", "env", "change", "requester", "age", "expires in", "reason"]
    rows = [_row(change, now) for change in found]
    if not decided:  # every row is pending: the column says nothing
        header.pop(1)
        rows = [row[:1] + row[2:] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for cells in (header, *rows):
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        print("  ".join([*padded, cells[-1]]))


def _row(change: ChangeRequest, now: datetime) -> list[str]:
    from app.approvals import RequestStatus

    status = str(change.status)
    if change.decided_by:
        status += f" by {printable(change.decided_by)}"
    pending = change.status is RequestStatus.PENDING
    return [
        change.id,
        status,
        printable(change.environment),
        "; ".join(t.diff for t in change.transitions) + (" [override]" if change.override else ""),
        printable(change.requester),
        _span((now - change.created_at).total_seconds()),
        _span((change.expires_at - now).total_seconds()) if pending else "-",
        printable(" ".join(change.reason.split())),
    ]


def _span(seconds: float) -> str:
    """A duration as a person reads it at a glance: `42 s`, `7 min`, `23 h 05 min`, `3 d 4 h`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


# -- decisions -------------------------------------------------------------------


def _run_approve(args: argparse.Namespace, settings: Settings) -> int:
    wanted = request_id(args.id)
    identity = cli_identity(settings, None)
    runtime = open_cli_runtime(settings)
    return _report(runtime.approve(wanted, identity, args.comment), args.json)


def _run_reject(args: argparse.Namespace, settings: Settings) -> int:
    wanted = request_id(args.id)
    identity = cli_identity(settings, None)
    runtime = open_cli_runtime(settings)
    return _report(runtime.reject(wanted, identity, args.reason), args.json)


def _run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    wanted = request_id(args.id)
    identity = cli_identity(settings, args.actor)
    runtime = open_cli_runtime(settings)
    return _report(runtime.cancel(wanted, identity), args.json)


def _report(decision: Decision, as_json: bool) -> int:
    """The decision's message (stdout when done, stderr as an error otherwise) and, when
    something was applied or tried, the change with its guard report."""
    if as_json:
        print_json(
            {
                "exit_code": int(decision.exit_code),
                "ok": decision.ok,
                "message": decision.message,
                "change_request": decision.change.as_json() if decision.change else None,
                "result": decision.result.as_json() if decision.result else None,
            }
        )
    else:
        if decision.ok:
            print(decision.message)
        if decision.result is not None:
            print_result(decision.result)
        elif decision.ok and decision.change is not None:
            print(decision.change.diff)
    if not decision.ok:
        print(f"error: {decision.message}", file=sys.stderr)
    return int(decision.exit_code)
