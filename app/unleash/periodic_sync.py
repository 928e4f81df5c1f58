"""Running the metrics sync (`app.unleash.metrics_sync`) with the settings' Unleash,
project and metrics database: once (`rollout-dashboard sync-unleash`), or in the
background of `serve` every `ROLLOUT_UNLEASH_SYNC_MINUTES`.

Only the standard library at import: the CLI registers `sync-unleash` from it, and the
sync itself is imported when it runs.
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings
    from app.unleash.metrics_sync import SyncReport

__all__ = [
    "MAX_HOURS",
    "recent_hours",
    "start_periodic_sync",
    "sync_once",
]

#: the most hours a sync reads back, and `--hours` accepts (Unleash keeps its client
#: metrics 48 h)
MAX_HOURS = 48


def sync_once(settings: Settings, hours: int = MAX_HOURS) -> SyncReport:
    """One sync with the settings' Unleash, project and metrics database."""
    from app.metrics_db.database import open_database
    from app.unleash.api import UnleashApi
    from app.unleash.metrics_sync import sync_unleash

    assert settings.unleash_url and settings.unleash_token is not None
    api = UnleashApi(settings.unleash_url, settings.unleash_token, settings.unleash_timeout_seconds)
    engine = open_database(settings.resolved_database_url, migrate_schema=settings.auto_migrate)
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
    from app.unleash.metrics_sync import failure_line, sync_periodically

    stop = threading.Event()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:  # migrate here, once: Alembic is not thread-safe, nor two migrations at once
        open_database(
            settings.resolved_database_url, migrate_schema=settings.auto_migrate
        ).dispose()
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
