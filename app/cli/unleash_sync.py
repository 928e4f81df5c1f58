"""`sync-unleash`: the command's arguments, messages and exit codes; the sync itself
is `app.unleash` (`periodic_sync.sync_once`, imported with the standard library only).

Exit codes: 0 synced; 2 Unleash not configured, or a token Unleash refuses (the
message never shows the token); 4 Unleash or the metrics database unavailable.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.rollout.exit_codes import ExitCode
from app.unleash.periodic_sync import MAX_HOURS, sync_once

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["add_sync_command", "run_sync_unleash"]

NOT_CONFIGURED = (
    "Unleash is not configured: set ROLLOUT_UNLEASH_URL (the server's root URL) and "
    "ROLLOUT_UNLEASH_TOKEN (an admin API token; or unleash_token under [rollout] in "
    ".streamlit/secrets.toml)"
)
#: Unleash's answers to a missing, unknown or too weak token
AUTH = (401, 403)


def _hours(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if not 1 <= value <= MAX_HOURS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_HOURS}, got {text[:40]}")
    return value


def add_sync_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sync-unleash [--hours N]` on the `add_subparsers()` result."""
    sync = subparsers.add_parser(
        "sync-unleash",
        help="copy Unleash's hourly client metrics into the metrics database (idempotent)",
    )
    sync.add_argument(
        "--hours",
        type=_hours,
        default=MAX_HOURS,
        help=f"how many hours back to read, 1 to {MAX_HOURS} (default {MAX_HOURS})",
    )
    sync.set_defaults(run=run_sync_unleash)
    return sync  # type: ignore[no-any-return]


def run_sync_unleash(args: argparse.Namespace, settings: Settings) -> int:
    """Sync once and print what was synced; a refused token is exit 2, an unreachable
    Unleash or database exit 4 (`main` turns SourceUnavailable into 4)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.unleash.api import UnleashRefused
    from app.unleash.metrics_sync import failure_line

    if not settings.unleash_url or settings.unleash_token is None:
        print(f"error: {NOT_CONFIGURED}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        report = sync_once(settings, args.hours)
    except UnleashRefused as error:
        hint = " (check ROLLOUT_UNLEASH_TOKEN: an admin token)" if error.status in AUTH else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return ExitCode.USAGE
    except SQLAlchemyError as error:
        print(f"error: metrics database: {failure_line(error)}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    print(report.summary())
    if report.features == 0:
        print(
            f"warning: Unleash project {settings.unleash_project} has no features "
            "(does ROLLOUT_UNLEASH_PROJECT name the right project?)",
            file=sys.stderr,
        )
    return ExitCode.DONE
