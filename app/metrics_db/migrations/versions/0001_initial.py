"""Evaluation roll-ups and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from app.metrics_db.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_rollups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("interval_start", UtcDateTime, nullable=False),
        sa.Column("interval_seconds", sa.Float, nullable=False),
        sa.Column("interval_end", UtcDateTime, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("variant", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("evaluations", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("latency_sum", sa.Float, nullable=False),
        sa.Column("latency_count", sa.Integer, nullable=False),
        sa.Column("latency_buckets", sa.JSON, nullable=False),
    )
    op.create_index("ix_rollups_env_end", "evaluation_rollups", ["environment", "interval_end"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("from_percentage", sa.Float, nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("to_percentage", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("override", sa.Boolean, nullable=False),
        sa.Column("idempotency_key", sa.String(64), unique=True),
        sa.Column("guards", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_flag_time", "audit_log", ["environment", "flag", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("evaluation_rollups")
