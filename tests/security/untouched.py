"""A small workspace for hostile-input tests, and its fingerprint: every file of the
state directory (flag files, their history, the audit journal) hashed, and every audit
row dumped, so a test can say "nothing was written" by comparing before and after."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select

from app.metrics_db.schema import AuditOutcome, AuditRecord
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import open_runtime
from app.settings import load_settings

FLAGS = """
version: "9"
phases:
  - {number: 1, name: First, planned_week: 1}
  - {number: 2, name: Second, planned_week: 2}
flags:
  ab_testing:
    state: rollout
    rollout: {percentage: 25}
    metadata: {phase: 1}
  canary_checkout:
    state: rollout
    rollout: {percentage: 5}
    metadata: {phase: 2}
  rollback_mechanism:
    state: enabled
"""
STAGING = "flags:\n  ab_testing:\n    rollout: {percentage: 10}\n"
PRODUCTION = "flags: {}\n"


def make_state(state: Path) -> Path:
    """Flag files for production and staging, a SQLite database, and one applied
    rollback by olga (so the audit log has rows a hostile input could damage)."""
    (state / "feature_flags.yaml").write_text(FLAGS)
    (state / "feature_flags_staging.yaml").write_text(STAGING)
    (state / "feature_flags_production.yaml").write_text(PRODUCTION)
    runtime = open_runtime(load_settings(state_dir=state, demo=True))
    seeded = runtime.execute(
        ActionRequest(
            Action.ROLLBACK,
            "production",
            "seed",
            Identity("olga", Role.OPERATOR, "cli"),
            flag="canary_checkout",
        )
    )
    assert seeded.applied, seeded.error
    assert runtime.engine is not None
    runtime.engine.dispose()
    return state


@dataclass(frozen=True)
class Fingerprint:
    files: dict[str, str]
    records: list[tuple[object, ...]]
    outcomes: list[tuple[object, ...]]


def fingerprint(state: Path) -> Fingerprint:
    """Hashes of every file under `state` but the database and a server's log, and every
    audit row."""
    files = {
        str(path.relative_to(state)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(state.rglob("*"))
        if path.is_file() and not path.name.startswith("metrics.db") and path.suffix != ".log"
    }
    engine = create_engine(f"sqlite:///{state / 'metrics.db'}")
    try:
        with engine.connect() as connection:
            records = [tuple(r) for r in connection.execute(select(AuditRecord.__table__))]
            outcomes = [tuple(r) for r in connection.execute(select(AuditOutcome.__table__))]
    finally:
        engine.dispose()
    return Fingerprint(files, records, outcomes)


def unchanged(state: Path) -> Callable[[], None]:
    """Take a fingerprint now; the returned check asserts it is the same later."""
    before = fingerprint(state)
    assert before.records, "the workspace has audit rows to compare"

    def check() -> None:
        after = fingerprint(state)
        assert after.files == before.files, "a file was written"
        assert after.records == before.records, "an audit record was written"
        assert after.outcomes == before.outcomes, "an audit outcome was written"

    return check
