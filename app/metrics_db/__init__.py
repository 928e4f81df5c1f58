"""The metrics database: roll-ups of evaluations and the audit log (SQLAlchemy 2 + Alembic)."""

from app.metrics_db.database import database_engine, insert_rollups, migrate, open_database
from app.metrics_db.records import LATENCY_BUCKETS, EvaluationRollup
from app.metrics_db.revisions import (
    HEAD_REVISION,
    Migration,
    MigrationRefused,
    SchemaNotCurrent,
    current_revision,
    downgrade,
    require_head,
    upgrade,
)
from app.metrics_db.schema import AuditRecord, Base, RollupRow

__all__ = [
    "HEAD_REVISION",
    "LATENCY_BUCKETS",
    "AuditRecord",
    "Base",
    "EvaluationRollup",
    "Migration",
    "MigrationRefused",
    "RollupRow",
    "SchemaNotCurrent",
    "current_revision",
    "database_engine",
    "downgrade",
    "insert_rollups",
    "migrate",
    "open_database",
    "require_head",
    "upgrade",
]
