"""What a state directory holds, to prove a command wrote nothing: every file (hashed)
and every row of every table of its SQLite metrics database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from app.metrics_db.schema import Base

__all__ = ["snapshot", "writes_nothing"]


def snapshot(state: Path) -> dict[str, Any]:
    """Every file of the state directory (hashed) and every row of every table: equal
    before and after means nothing was written."""
    files = {
        str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.rglob("*"))
        if p.is_file() and not p.name.startswith("metrics.db")
    }
    engine = create_engine(f"sqlite:///{state / 'metrics.db'}")
    try:
        with engine.connect() as connection:
            tables = {
                table.name: [tuple(row) for row in connection.execute(select(table))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()
    return {"files": files, "tables": tables}


def writes_nothing(state: Path) -> Callable[[], None]:
    """Takes a snapshot now; the returned check fails if `state` has changed since."""
    before = snapshot(state)

    def check() -> None:
        assert snapshot(state) == before, "something was written"

    return check
