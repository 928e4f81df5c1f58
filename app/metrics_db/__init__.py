"""The metrics database: roll-ups of evaluations and the audit log (SQLAlchemy 2 + Alembic)."""

from app.metrics_db.database import insert_rollups, migrate, open_database
from app.metrics_db.records import LATENCY_BUCKETS, EvaluationRollup
from app.metrics_db.schema import AuditRecord, Base, RollupRow

__all__ = [
    "LATENCY_BUCKETS",
    "AuditRecord",
    "Base",
    "EvaluationRollup",
    "RollupRow",
    "insert_rollups",
    "migrate",
    "open_database",
]
