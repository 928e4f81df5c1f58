"""Change requests: advances that wait for a second person's approval.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from app.metrics_db.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("requester_account", sa.String(200)),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("flag", sa.String(200)),
        sa.Column("to_percentage", sa.Float),
        sa.Column("override", sa.Boolean, nullable=False),
        sa.Column("restore_of", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("transitions", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("guards", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_at", UtcDateTime),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_change_requests_status", "change_requests", ["status", "environment"])


def downgrade() -> None:
    op.drop_index("ix_change_requests_status", "change_requests")
    op.drop_table("change_requests")
