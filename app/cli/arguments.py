"""What every command parses the same way: instants, counts, request ids, who acts, and the
environment it acts on.

Imported while the parser is built (also for `--help`): the runtime is imported by
`runtime_for`, when a command runs."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.errors import RolloutError
from app.quoting import quoted

if TYPE_CHECKING:
    from app.metrics_db.revisions import Migration
    from app.rollout.roles import Identity
    from app.runtime import Runtime
    from app.settings import Settings

__all__ = [
    "UsageError",
    "cli_identity",
    "instant",
    "open_cli_runtime",
    "record_count",
    "request_id",
    "runtime_for",
    "whole_number",
]


class UsageError(RolloutError, ValueError):
    """What was typed cannot be used: `main` prints it on one line and exits 2, having
    written nothing."""


#: the most records one `audit` listing returns
MAX_RECORDS = 100_000


def instant(text: str) -> datetime:
    """An ISO-8601 instant (UTC when it names no zone); an argparse error otherwise."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from error
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def whole_number(text: str, most: int) -> int:
    """A whole number from 1 to `most`; an argparse error (exit 2) otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"must be 1 to {most:,}, got {text[:40]}")
    return value


def record_count(text: str) -> int:
    """A number of records, 1 to `MAX_RECORDS`; an argparse error (exit 2) otherwise."""
    return whole_number(text, MAX_RECORDS)


def open_cli_runtime(settings: Settings, *, read_only: bool = False) -> Runtime:
    """The runtime of one command from the terminal. A command that only reads never
    migrates (a database at another revision: SchemaNotCurrent, saying what to run); the
    others migrate as `serve` does unless ROLLOUT_AUTO_MIGRATE=false, saying so on stderr
    when they do. Its webhook deliveries are handed over to the autopilot, so that the
    command never waits for a receiver on exit."""
    from app.runtime import open_runtime

    return open_runtime(
        settings,
        read_only=read_only,
        on_migrated=say_migrated,
        hand_over_notifications=True,
    )


def say_migrated(migration: Migration) -> None:
    """Say on stderr that this process moved the schema."""
    print(migration.describe(), file=sys.stderr, flush=True)


def runtime_for(
    settings: Settings, wanted: str | None, *, read_only: bool = False
) -> tuple[Runtime, str] | None:
    """The runtime (`open_cli_runtime`) and the environment a command acts on (`--env`,
    else the settings'); None, said on stderr, when that environment is not configured.
    A command that writes says on stderr when the sql flag backend holds no flags (it
    would only answer "unknown flag"); one that reads says it with its other notices."""
    from app.runtime import EMPTY_SQL_BACKEND

    runtime = open_cli_runtime(settings, read_only=read_only)
    if not read_only and EMPTY_SQL_BACKEND in runtime.notices:
        print(f"warning: {EMPTY_SQL_BACKEND}", file=sys.stderr)
    environment = wanted or settings.environment
    if environment not in runtime.environments():
        print(f"unknown environment {quoted(environment)}", file=sys.stderr)
        return None
    return runtime, environment


#: a change request id has at most this many digits (the database's 64-bit integer)
MAX_ID_DIGITS = 18


def request_id(text: str) -> str:
    """A change request id as `requests` lists it (`12`; `#12` is read as 12), in the
    form the store expects; UsageError for anything else (`abc`, `١٢`, 40 digits)."""
    digits = text.strip()
    digits = digits[1:] if digits.startswith("#") else digits
    if not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_ID_DIGITS:
        raise UsageError(
            f"not a change request id: {quoted(text)} (a number, as `requests` lists it)"
        )
    return str(int(digits))


def os_account() -> str:
    """The OS account running this process, from the real user id: not `LOGNAME` or
    `USER`, which anyone can set to another person's name. A user id without a passwd
    entry (a container run under an arbitrary UID, as OpenShift does) is `uid-<n>`."""
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def cli_identity(settings: Settings, actor: str | None) -> Identity:
    """The CLI user: `actor` (`--actor`) or the OS account, with the role the mapping
    gives that name (any name is an operator in demo mode). The OS account is kept with
    it whatever name was declared: a request and its approval from one account are one
    pair of eyes."""
    from app.rollout.roles import Identity, Role, role_for

    account = os_account()
    name = account if actor is None else actor
    if settings.demo:
        return Identity(name, Role.OPERATOR, "demo", account)
    role = role_for(name, (), settings.roles, settings.default_role)
    return Identity(name, role, "cli", account)
