"""The autopilot: rollout plans, what it did about them, its leader lease and heartbeat,
and the webhook deliveries of its notifications.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from app.metrics_db.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_plans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("soak_seconds", sa.Float, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("on_failure", sa.String(16), nullable=False),
        sa.Column("stop_at", sa.Float, nullable=False),
        sa.Column("allowed_hours", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("status_by", sa.String(200), nullable=False),
        sa.Column("status_at", UtcDateTime, nullable=False),
        sa.Column("expected_state", sa.String(16), nullable=False),
        sa.Column("expected_percentage", sa.Float, nullable=False),
        sa.Column("actions_taken", sa.Integer, nullable=False),
        sa.Column("ticks_without_data", sa.Integer, nullable=False),
        sa.Column("failing_since", UtcDateTime),
        sa.Column("last_decision", sa.Text, nullable=False),
        sa.Column("last_decision_at", UtcDateTime),
        sa.Column("next_at", UtcDateTime),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_account", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("environment", "flag", name="uq_rollout_plans_flag"),
    )
    op.create_table(
        "autopilot_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.Integer, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_percentage", sa.Float, nullable=False),
        sa.Column("to_percentage", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("gate", sa.JSON),
        sa.Column("audit_id", sa.String(64), nullable=False),
        sa.Column("failure_seen_at", UtcDateTime),
        sa.Column("mitigated_at", UtcDateTime),
    )
    op.create_index("ix_autopilot_events_plan", "autopilot_events", ["plan_id", "at"])
    op.create_table(
        "autopilot_lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("last_tick_at", UtcDateTime),
        sa.Column("last_tick_seconds", sa.Float),
        sa.Column("interval_seconds", sa.Float, nullable=False),
        sa.Column("ticks", sa.Integer, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("webhook", sa.String(200), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("flag", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_webhook_deliveries_at", "webhook_deliveries", ["at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_at", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("autopilot_lease")
    op.drop_index("ix_autopilot_events_plan", "autopilot_events")
    op.drop_table("autopilot_events")
    op.drop_table("rollout_plans")
