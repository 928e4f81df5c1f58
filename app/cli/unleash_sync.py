"""`sync-unleash`: copy Unleash's hourly client metrics into the metrics database, and
the periodic copy `serve` runs (`ROLLOUT_UNLEASH_SYNC_MINUTES`).

Exit codes: 0 synced; 2 Unleash not configured, or a token Unleash refuses (the
message never shows the token); 4 Unleash or the metrics database unavailable. The
sync itself (`app.metrics_db.unleash_sync`) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from app.metrics_db.unleash_sync import SyncReport
    from app.settings import Settings

__all__ = [
    "add_sync_command",
    "recent_hours",
    "run_sync_unleash",
    "start_periodic_sync",
    "sync_once",
]

NOT_CONFIGURED = (
    "Unleash is not configured: set ROLLOUT_UNLEASH_URL (the server's root URL) and "
    "ROLLOUT_UNLEASH_TOKEN (an admin API token; or unleash_token under [rollout] in "
    ".streamlit/secrets.toml)"
)
#: Unleash's answers to a missing, unknown or too weak token
AUTH = (401, 403)
#: `--hours` accepts 1 to this (Unleash keeps its client metrics 48 h)
MAX_HOURS = 48


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

    from app.flags.unleash_api import UnleashRefused
    from app.metrics_db.unleash_sync import failure_line

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


def sync_once(settings: Settings, hours: int = MAX_HOURS) -> SyncReport:
    """One sync with the settings' Unleash, project and metrics database."""
    from app.flags.unleash_api import UnleashApi
    from app.metrics_db.database import open_database
    from app.metrics_db.unleash_sync import sync_unleash

    assert settings.unleash_url and settings.unleash_token is not None
    api = UnleashApi(settings.unleash_url, settings.unleash_token, settings.unleash_timeout_seconds)
    engine = open_database(settings.resolved_database_url)
    try:
        return sync_unleash(api, engine, settings.unleash_project, hours)
    finally:
        engine.dispose()


def recent_hours(minutes: int) -> int:
    """Hours a periodic run re-reads once a whole 48 h run has succeeded: the hours
    since the last run, the still-filling one and one more for metrics an SDK sends
    late (every 60 s by default). Older hours no longer change in Unleash."""
    return min(MAX_HOURS, -(-minutes // 60) + 2)


def start_periodic_sync(settings: Settings) -> threading.Event | None:
    """For `serve`: migrates the metrics database, then starts a daemon thread syncing
    every `unleash_sync_minutes` (the first at once, over 48 h; once one succeeded,
    over `recent_hours`), logging each failure on one line of stderr. None when off (0
    minutes) or when Unleash is not configured. Setting the returned event stops it."""
    if not settings.unleash_sync_minutes or not settings.unleash_url:
        return None
    if settings.unleash_token is None:
        return None
    from app.metrics_db.database import open_database
    from app.metrics_db.unleash_sync import failure_line, sync_periodically

    stop = threading.Event()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:  # migrate here, once: Alembic is not thread-safe, nor two migrations at once
        open_database(settings.resolved_database_url).dispose()
    except Exception as error:  # the thread's runs will say it again, one line each
        log(f"unleash sync: metrics database: {failure_line(error)}")

    synced = threading.Event()  # a first whole-48 h run succeeded

    def run() -> None:
        hours = recent_hours(settings.unleash_sync_minutes) if synced.is_set() else MAX_HOURS
        sync_once(settings, hours)
        synced.set()

    thread = threading.Thread(
        target=sync_periodically,
        args=(run, timedelta(minutes=settings.unleash_sync_minutes), stop, log),
        name="unleash-sync",
        daemon=True,
    )
    thread.start()
    return stop
