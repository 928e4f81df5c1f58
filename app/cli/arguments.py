"""What every command parses the same way: instants, and the environment it acts on.

Imported while the parser is built (also for `--help`): the runtime is imported by
`runtime_for`, when a command runs."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.quoting import quoted

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.settings import Settings

__all__ = ["instant", "record_count", "runtime_for"]

#: the most records one `audit` listing returns
MAX_RECORDS = 100_000


def instant(text: str) -> datetime:
    """An ISO-8601 instant (UTC when it names no zone); an argparse error otherwise."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from error
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def record_count(text: str) -> int:
    """A number of records, 1 to `MAX_RECORDS`; an argparse error (exit 2) otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if not 1 <= value <= MAX_RECORDS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_RECORDS:,}, got {text[:40]}")
    return value


def runtime_for(settings: Settings, wanted: str | None) -> tuple[Runtime, str] | None:
    """The runtime and the environment a command acts on (`--env`, else the settings');
    None, said on stderr, when that environment is not configured."""
    from app.runtime import open_runtime

    runtime = open_runtime(settings)
    environment = wanted or settings.environment
    if environment not in runtime.environments():
        print(f"unknown environment {quoted(environment)}", file=sys.stderr)
        return None
    return runtime, environment
