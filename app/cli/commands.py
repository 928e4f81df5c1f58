"""`rollout-dashboard`: the same core as the pages, for scripts and on-call terminals.

Exit codes (docs/design.md §6): 0 done; 1 refused or config invalid; 2 bad usage or input;
3 conflict; 4 a required source is unavailable; 5 not applied: a change request now
waits for another operator's approval; 141 stdout was closed (`… | head`), as for any tool
stopped by SIGPIPE, without a traceback. With `--json`, stdout carries one JSON document
and nothing else; diagnostics go to stderr, never a traceback for user errors.

Building the parser imports nothing but the standard library, so `--help` is instant;
each command imports what it uses when it runs (a rollback never loads pandas, scipy,
Alembic or the PromQL client).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from app.cli.approvals import add_approval_commands
from app.cli.arguments import (
    UsageError,
    cli_identity,
    instant,
    open_cli_runtime,
    record_count,
    runtime_for,
)
from app.cli.autopilot import add_autopilot_commands
from app.cli.canary import add_canary_command
from app.cli.database import add_db_commands
from app.cli.healthcheck import add_healthcheck_command
from app.cli.output import print_json, print_result
from app.cli.unleash_sync import add_sync_command
from app.errors import RolloutError
from app.quoting import printable
from app.rollout.exit_codes import ExitCode
from app.unleash.periodic_sync import start_periodic_sync
from app.version import package_version

if TYPE_CHECKING:
    from app.rollout.action_model import ActionResult, RequestedChange
    from app.runtime import Runtime
    from app.settings import Settings

__all__ = ["ExitCode", "cli_identity", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe prints a traceback
    except BrokenPipeError:
        # The reader went away (`status --json | head -1`): stop quietly. Point stdout at
        # /dev/null so that the interpreter's own flush at exit finds nothing to fail on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.CLOSED_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from app.flags.loader import ConfigInvalid
    from app.settings import SettingsInvalid, load_settings
    from queries.source import SourceUnavailable

    try:
        settings = load_settings()
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        print(f"invalid settings: {error}", file=sys.stderr)
        return ExitCode.USAGE
    from app.logs import configure_logging

    # the services say how they work as they go; a command only what went wrong
    services = args.command in ("serve", "autopilot")
    configure_logging(settings.log_format, logging.INFO if services else logging.WARNING)
    try:
        code: int = args.run(args, settings)
    except ConfigInvalid as error:
        print(f"flag configuration is invalid:\n{error}", file=sys.stderr)
        return ExitCode.REFUSED
    except SourceUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except SettingsInvalid as error:  # found when a command opens what they name
        print(f"invalid settings: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except RolloutError as error:
        return _schema_error(error)
    return code


def _schema_error(error: RolloutError) -> int:
    """A schema this process may not use (exit 4, saying what to run) or a downgrade
    target it cannot reach (exit 2); anything else is raised again. The migration
    module is loaded already whenever one of its errors was raised."""
    from app.metrics_db.revisions import MigrationRefused, SchemaNotCurrent

    if isinstance(error, SchemaNotCurrent):
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    if isinstance(error, MigrationRefused):
        print(f"error: {error}", file=sys.stderr)
        return ExitCode.USAGE
    raise error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollout-dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="start the dashboard on embedded defaults")
    demo.add_argument("--port", type=int, default=8501)
    demo.add_argument("--state-dir", type=Path, default=None)
    demo.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also run a local Prometheus scraping the simulator",
    )
    demo.add_argument(
        "--with-unleash",
        action="store_true",
        help="act on a real local Unleash server (needs Node.js 20 and PostgreSQL at "
        "127.0.0.1:5432); the simulated users evaluate through the Unleash SDK",
    )
    demo.set_defaults(run=_run_demo)

    serve = commands.add_parser(
        "serve",
        help="serve the dashboard on the configured sources",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument(
        "--address",
        type=_address,
        default=None,
        help="interface to bind (default: ROLLOUT_SERVER_ADDRESS, else 127.0.0.1)",
    )
    serve.set_defaults(run=_run_serve)

    status = commands.add_parser("status", help="every flag with its live numbers")
    status.add_argument("--env", dest="environment")
    status.add_argument("--phase", type=int, choices=range(1, 7))
    status.add_argument("--json", action="store_true")
    status.add_argument("--at", type=instant, help="as of this ISO-8601 instant (replays)")
    status.add_argument(
        "--show-queries",
        action="store_true",
        help="print how many metric queries the status took, on stderr",
    )
    status.set_defaults(run=_run_status)

    phases = commands.add_parser("phases", help="progress of the six phases")
    phases.add_argument("--env", dest="environment")
    phases.add_argument("--json", action="store_true")
    phases.set_defaults(run=_run_phases)

    advance = commands.add_parser(
        "advance",
        help="move a flag to the next step of the ladder (where approval is needed: a change "
        "request, exit 5)",
    )
    _advance_options(advance)
    advance.set_defaults(run=_run_action, action="advance")

    request = commands.add_parser(
        "request", help="ask for a change another operator approves (never applies it)"
    )
    asked = request.add_subparsers(dest="requested", required=True, metavar="ACTION")
    request_advance = asked.add_parser(
        "advance",
        help="an advance as a change request (exit 5); refused where no approval is needed",
    )
    _advance_options(request_advance)
    request_advance.set_defaults(run=_run_request, action="advance")

    rollback = commands.add_parser("rollback", help="move a flag back (never blocked by metrics)")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("flag", nargs="?")
    target.add_argument(
        "--all-experimental",
        action="store_true",
        help="kill every flag in state rollout except the safety flags",
    )
    rollback.add_argument("--kill", action="store_true", help="to 0 %% / disabled")
    rollback.add_argument("--to", type=float, dest="to_percentage", metavar="PCT")
    _action_options(rollback)
    rollback.set_defaults(run=_run_action, action="rollback")

    restore = commands.add_parser(
        "restore", help="put every flag an audited action changed back to its prior state"
    )
    restore.add_argument("audit_id", metavar="AUDIT_ID")
    restore.add_argument("--override-guards", action="store_true", help="admin only")
    _action_options(restore, environment=False)
    restore.set_defaults(run=_run_restore)

    audit = commands.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--flag")
    audit.add_argument("--since", type=instant, help="ISO-8601 instant")
    audit.add_argument("--limit", type=record_count, default=200)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=_run_audit)

    add_approval_commands(commands)
    add_canary_command(commands)
    add_sync_command(commands)
    add_autopilot_commands(commands)
    add_healthcheck_command(commands)
    add_db_commands(commands)

    check = commands.add_parser("check-config", help="validate a flag configuration")
    check.add_argument("path", nargs="?", type=Path)
    check.set_defaults(run=_run_check_config)
    return parser


SERVE_DESCRIPTION = """\
Serve the dashboard on the configured sources.

What each --address exposes:
  127.0.0.1  this machine only (the default): a browser on this host, or a reverse
             proxy on the same host that adds TLS and sign-in
  0.0.0.0    every interface: needed inside a container; put TLS and sign-in in front
             (`[auth]` in .streamlit/secrets.toml), anyone who reaches the port sees it
"""


def _address(text: str) -> str:
    """`--address`: the same check as the setting; an argparse error (exit 2) otherwise."""
    from app.settings import server_address

    try:
        return server_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _advance_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flag")
    parser.add_argument("--to", type=float, dest="to_percentage", metavar="PCT")
    parser.add_argument("--override-guards", action="store_true", help="admin only")
    _action_options(parser)


def _action_options(parser: argparse.ArgumentParser, *, environment: bool = True) -> None:
    if environment:
        parser.add_argument("--env", dest="environment")
    parser.add_argument("--reason", required=True)
    parser.add_argument("--actor", default=None, help="who acts (default: the OS user)")
    parser.add_argument("--idempotency-key", default=None, help="the same key applies once")
    parser.add_argument("--dry-run", action="store_true", help="show the diff and guards only")
    parser.add_argument("--json", action="store_true")


def _run_status(args: argparse.Namespace, settings: Settings) -> int:
    opened = runtime_for(settings, args.environment, read_only=True)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    overview = runtime.overview(environment, args.at)
    rows = [r for r in overview.rows if args.phase is None or r.phase == args.phase]
    for notice in overview.notices:
        print(f"warning: {notice}", file=sys.stderr)
    if args.show_queries:
        print(f"{overview.queries} {overview.source} queries", file=sys.stderr)
    if args.json:
        print_json(
            {
                "environment": environment,
                "source": overview.source,
                "generated_at": overview.generated_at.isoformat(),
                "data_age_seconds": overview.data_age_seconds,
                "flags": [row.as_json() for row in rows],
            }
        )
    else:
        _print_status_table(sys.stdout, overview.source, overview.data_age_seconds, rows)
    return ExitCode.UNAVAILABLE if overview.source == "none" else ExitCode.DONE


def _print_status_table(out: TextIO, source: str, age: float | None, rows: Sequence[Any]) -> None:
    age_text = "no data" if age is None else f"{age:.0f} s old"
    print(f"source: {source}, data {age_text}", file=out)
    print(
        f"{'flag':<36} {'ph':>2} {'state':<8} {'pct':>6} {'eval/s':>8} {'err%':>6} "
        f"{'p99 ms':>7}  health",
        file=out,
    )
    for r in rows:
        err = "-" if r.error_rate is None else f"{100 * r.error_rate:.2f}"
        p99 = "-" if r.p99_seconds is None else f"{1000 * r.p99_seconds:.1f}"
        phase = "-" if r.phase is None else str(r.phase)
        print(
            f"{r.flag:<36} {phase:>2} {r.state:<8} {r.percentage:>6.1f} "
            f"{r.evaluations_per_second:>8.2f} {err:>6} {p99:>7}  {r.health}",
            file=out,
        )


def _run_action(args: argparse.Namespace, settings: Settings) -> int:
    from queries.source import SourceUnavailable

    try:
        opened = runtime_for(settings, args.environment)
    except SourceUnavailable:
        return _act_unavailable(args, settings)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    return _act(runtime, environment, args, settings)


def _act_unavailable(args: argparse.Namespace, settings: Settings) -> int:
    """The flag backend (a flag server) cannot be reached: the attempt still goes
    through the runtime, which audits it as failed (exit 4)."""
    runtime = open_cli_runtime(settings)
    return _act(runtime, args.environment or settings.environment, args, settings)


def _run_request(args: argparse.Namespace, settings: Settings) -> int:
    """`request advance`: what `advance` does where a second person approves; refused
    (exit 2) where nobody would, so that asking never applies a change by surprise."""
    opened = runtime_for(settings, args.environment)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    if not runtime.approvals.needed_in(environment):
        print(
            f"error: {environment} needs no approval: use `rollout-dashboard {args.action}` "
            "(nothing was requested or applied)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    return _act(runtime, environment, args, settings)


def _act(runtime: Runtime, environment: str, args: argparse.Namespace, settings: Settings) -> int:
    from app.rollout.action_model import Action, ActionRequest

    action = Action(args.action)
    if action is Action.ROLLBACK and getattr(args, "all_experimental", False):
        action = Action.EMERGENCY
    elif action is Action.ROLLBACK and args.kill:
        action = Action.KILL
    request = ActionRequest(
        action=action,
        environment=environment,
        reason=args.reason,
        identity=cli_identity(settings, args.actor),
        flag=args.flag,
        to_percentage=args.to_percentage,
        dry_run=args.dry_run,
        override_guards=getattr(args, "override_guards", False),
        **({"idempotency_key": args.idempotency_key} if args.idempotency_key else {}),
    )
    return _report(runtime.execute(request), args.json, runtime)


def _run_restore(args: argparse.Namespace, settings: Settings) -> int:
    """`restore AUDIT_ID`: the environment is the record's."""
    from app.rollout.action_model import Action, ActionRequest

    runtime = open_cli_runtime(settings)
    record = runtime.audit.get(args.audit_id)
    if record is None:
        print(f"error: no audit record #{printable(args.audit_id)}", file=sys.stderr)
        return ExitCode.USAGE
    request = ActionRequest(
        action=Action.RESTORE,
        environment=record.environment,
        reason=args.reason,
        identity=cli_identity(settings, args.actor),
        restore_of=record.id,
        dry_run=args.dry_run,
        override_guards=args.override_guards,
        **({"idempotency_key": args.idempotency_key} if args.idempotency_key else {}),
    )
    return _report(runtime.execute(request), args.json, runtime)


def _report(result: ActionResult, as_json: bool, runtime: Runtime) -> int:
    if as_json:
        document = result.as_json()
        if result.plan is not None and result.plan.request.restore_of:
            document["restore_of"] = result.plan.request.restore_of
        print_json(document)
    else:
        print_result(result)
        if result.change_request is not None:
            _print_requested(result.change_request, made=bool(result.audit))
        elif _would_wait(result, runtime):
            assert result.plan is not None
            print(
                f"in {result.plan.request.environment} this waits for another operator's "
                "approval: it would become a change request"
            )
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return int(result.exit_code)


def _would_wait(result: ActionResult, runtime: Runtime) -> bool:
    """A dry run of a change that, done for real, would become a change request."""
    plan = result.plan
    if plan is None or not plan.request.dry_run or not plan.transitions:
        return False
    return runtime.approvals.needs_approval(plan)


def _print_requested(change: RequestedChange, *, made: bool) -> None:
    """The change request an action became instead of applying (exit 5)."""
    approver = "admin" if change.override else "operator"
    if made:
        print(
            f"change request #{change.id} created: waits for another {approver}'s approval "
            f"(rollout-dashboard approve {change.id})"
        )
        print(
            f"it expires at {change.expires_at:%Y-%m-%d %H:%M} UTC; "
            f"withdraw it with: rollout-dashboard cancel {change.id}"
        )
    else:  # the idempotency key was used: this is the request made with it
        print(f"change request #{change.id} was made with this idempotency key: {change.status}")


def _run_audit(args: argparse.Namespace, settings: Settings) -> int:
    runtime = open_cli_runtime(settings, read_only=True)
    entries = runtime.audit.entries(flag=args.flag, since=args.since, limit=args.limit)
    if not runtime.audit.database_ok():
        print(
            "warning: metrics database unavailable: showing the local journal only", file=sys.stderr
        )
    if args.json:
        print_json({"records": [entry.as_json() for entry in entries]})
        return ExitCode.DONE
    for e in entries:
        print(
            f"{e.id:>6} {e.at:%Y-%m-%d %H:%M:%S} {e.environment:<12} {e.actor:<16} "
            f"{e.action:<18} {e.flag:<32} {e.from_percentage:g} → {e.to_percentage:g} %  "
            f"{e.outcome}" + ("  OVERRIDE" if e.override else "")
        )
        for line in textwrap.wrap(e.reason, width=AUDIT_REASON_WIDTH) or [""]:
            print(f"{'':>8}{line}")
        if e.detail:
            for line in textwrap.wrap(e.detail, width=AUDIT_REASON_WIDTH):
                print(f"{'':>8}! {line}")
    return ExitCode.DONE


#: the audit listing wraps reasons at this width, indented under their record
AUDIT_REASON_WIDTH = 88


def _run_phases(args: argparse.Namespace, settings: Settings) -> int:
    opened = runtime_for(settings, args.environment, read_only=True)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    progress = runtime.phases(environment)
    if args.json:
        print_json(
            {
                "phases": [
                    {
                        "phase": p.phase,
                        "name": p.name,
                        "planned_week": p.planned_week,
                        "status": str(p.status),
                        "progress": p.progress,
                        "flags": list(p.flags),
                        "flags_complete": p.flags_complete,
                        "blocked_by": list(p.blocked_by),
                    }
                    for p in progress
                ]
            }
        )
        return ExitCode.DONE
    for p in progress:
        blocked = f"  blocked by {', '.join(p.blocked_by)}" if p.blocked_by else ""
        print(
            f"phase {p.phase} (week {p.planned_week}) {p.name:<36} {100 * p.progress:5.1f} %  "
            f"{p.flags_complete}/{len(p.flags)} at 100 %  {p.status}{blocked}"
        )
    return ExitCode.DONE


def _run_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from app.flags.loader import BUNDLED_CONFIG, check_config

    path: Path = args.path or settings.flags_file or BUNDLED_CONFIG
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return ExitCode.USAGE
    issues = check_config(path)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        print(f"{len(issues)} problem(s); nothing was written", file=sys.stderr)
        return ExitCode.REFUSED
    print(f"{path}: valid")
    return ExitCode.DONE


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo.launcher import run_demo

    state_dir = args.state_dir or settings.state_dir
    return run_demo(
        state_dir,
        args.port,
        simulator_port=settings.simulator_port,
        with_prometheus=args.with_prometheus,
        with_unleash=args.with_unleash,
    )


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective configuration; migrate (unless ROLLOUT_AUTO_MIGRATE=false:
    then refuse a database at another revision, exit 4) and seed an empty sql flag
    backend once, before Streamlit starts, saying on stderr what the pages will say (e.g.
    the database is unavailable); then watch the database so that an outage is said in
    serve's log even while nobody looks at a page."""
    import os

    from app.cli.output import print_configuration
    from app.metrics_db.availability import probe_forever
    from app.serve import serve, streamlit_env

    print_configuration(settings, "serve")
    streamlit_env(os.environ)  # an unusable cookie secret file stops it first (exit 2)
    runtime = open_cli_runtime(settings)
    for notice in runtime.notices:
        print(f"warning: {notice}", file=sys.stderr, flush=True)
    if runtime.engine is not None:
        probe_forever(runtime.engine, settings.refresh_seconds)
    start_periodic_sync(settings)
    return serve(
        args.port, args.address or settings.server_address, log_format=str(settings.log_format)
    )
