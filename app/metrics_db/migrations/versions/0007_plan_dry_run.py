"""A plan may be a dry run (judged and recorded every tick, never acting) and may have
its own false-action budget per plan-day.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollout_plans") as table:
        table.add_column(
            sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("budget", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollout_plans") as table:
        table.drop_column("budget")
        table.drop_column("dry_run")
