"""Audit outcomes, flags stored in SQL, HTTP request roll-ups, instance reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from app.metrics_db.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_outcomes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit_log.id"), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_outcomes_audit_id", "audit_outcomes", ["audit_id"])
    op.create_table(
        "flag_definitions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("environment", "flag", name="uq_flag_definitions"),
    )
    op.create_table(
        "flag_configs",
        sa.Column("environment", sa.String(200), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "request_rollups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("interval_start", UtcDateTime, nullable=False),
        sa.Column("interval_seconds", sa.Float, nullable=False),
        sa.Column("interval_end", UtcDateTime, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("track", sa.String(64), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("latency_sum", sa.Float, nullable=False),
        sa.Column("latency_count", sa.Integer, nullable=False),
        sa.Column("latency_buckets", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_request_rollups_env_end", "request_rollups", ["environment", "interval_end"]
    )
    op.create_table(
        "instance_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("config_version", sa.String(200), nullable=False),
        sa.Column("reported_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("environment", "instance", name="uq_instance_reports"),
    )


def downgrade() -> None:
    op.drop_table("instance_reports")
    op.drop_table("request_rollups")
    op.drop_table("flag_configs")
    op.drop_table("flag_definitions")
    op.drop_table("audit_outcomes")
