"""Roll-ups copied from elsewhere (sync-unleash): an `origin` column, and at most one
copied row per origin, environment, flag, variant, reason and interval start.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COPIED = sa.text("origin != ''")


def upgrade() -> None:
    op.add_column(
        "evaluation_rollups",
        sa.Column("origin", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index(
        "uq_rollups_copied",
        "evaluation_rollups",
        ["flag", "interval_start", "origin", "environment", "variant", "reason"],
        unique=True,
        sqlite_where=COPIED,
        postgresql_where=COPIED,
    )


def downgrade() -> None:
    op.drop_index("uq_rollups_copied", "evaluation_rollups")
    with op.batch_alter_table("evaluation_rollups") as batch:
        batch.drop_column("origin")
