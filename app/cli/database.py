"""`rollout-dashboard db upgrade | current | downgrade REVISION`: the metrics database's
schema, moved under the migration lock (`app.metrics_db.revisions`), so a migration Job
and any number of starting processes may run at once.

Only the standard library at import: the CLI registers these commands from it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.settings import Settings

__all__ = ["add_db_commands"]


def add_db_commands(subparsers: Any) -> None:
    """Register `db upgrade`, `db current` and `db downgrade REVISION`."""
    db = subparsers.add_parser(
        "db",
        help="the metrics database's schema: upgrade, current, downgrade",
        description="Move or show the metrics database's schema (ROLLOUT_DATABASE_URL). "
        "serve, autopilot and the commands that write upgrade it at start unless "
        "ROLLOUT_AUTO_MIGRATE=false; the commands that only read never do.",
    )
    verbs = db.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser(
        "upgrade", help="bring the schema to this release's revision (idempotent)"
    ).set_defaults(run=_run_upgrade)
    verbs.add_parser(
        "current", help="the schema's revision, and whether it is this release's"
    ).set_defaults(run=_run_current)
    down = verbs.add_parser(
        "downgrade",
        help="move the schema down to REVISION (before running an older release)",
    )
    down.add_argument("revision", metavar="REVISION", help="e.g. 0004, or base (no schema)")
    down.set_defaults(run=_run_downgrade)


def _engine(settings: Settings) -> Engine:
    from app.metrics_db.database import database_engine

    return database_engine(settings.resolved_database_url)


def _unavailable(error: Exception) -> int:
    print(f"error: metrics database unavailable: {type(error).__name__}", file=sys.stderr)
    return ExitCode.UNAVAILABLE


def _run_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.metrics_db.revisions import upgrade

    engine = _engine(settings)
    try:
        print(upgrade(engine).describe())
    except SQLAlchemyError as error:
        return _unavailable(error)
    finally:
        engine.dispose()
    return ExitCode.DONE


def _run_current(_args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.metrics_db.revisions import HEAD_REVISION, UPGRADE_COMMAND, current_revision

    engine = _engine(settings)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as error:
        return _unavailable(error)
    finally:
        engine.dispose()
    if current == HEAD_REVISION:
        print(f"{current} (head)")
    elif current is None:
        print(f"no schema (this release's head is {HEAD_REVISION}: run `{UPGRADE_COMMAND}`)")
    else:
        print(f"{current} (this release's head is {HEAD_REVISION}: run `{UPGRADE_COMMAND}`)")
    return ExitCode.DONE


def _run_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.metrics_db.revisions import downgrade

    engine = _engine(settings)
    try:
        moved = downgrade(engine, args.revision.strip())
    except SQLAlchemyError as error:
        return _unavailable(error)
    finally:
        engine.dispose()
    print(moved.describe())
    if moved.changed:
        print(
            "note: serve, autopilot and the commands that write of this release upgrade it "
            "again at start unless ROLLOUT_AUTO_MIGRATE=false; the commands that only read "
            "refuse it",
            file=sys.stderr,
        )
    return ExitCode.DONE
