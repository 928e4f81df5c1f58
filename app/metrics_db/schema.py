"""Tables of the metrics database (SQLAlchemy 2). Changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AuditOutcome",
    "AuditRecord",
    "AutopilotEventRow",
    "AutopilotLeaseRow",
    "Base",
    "ChangeRequestRow",
    "InstanceReport",
    "RequestRollup",
    "RolloutPlanRow",
    "RollupRow",
    "StoredConfig",
    "StoredFlag",
    "UtcDateTime",
    "WebhookDeliveryRow",
]


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (portable to SQLite), returns tz-aware UTC; refuses naive input."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


#: rows copied from somewhere else carry a non-empty `origin`; one row per origin and key
_COPIED = text("origin != ''")


class RollupRow(Base):
    """Evaluations of one flag/variant/reason in one environment over one interval.

    `origin` is empty for roll-ups written here (the simulator, the evaluator's writers)
    and names the source of a copied one (`unleash:<appName>`, `sync-unleash`): a copy
    has one row per origin, environment, flag, variant, reason and interval start
    (a partial unique index), so re-copying replaces and never adds.
    """

    __tablename__ = "evaluation_rollups"
    __table_args__ = (
        Index("ix_rollups_env_end", "environment", "interval_end"),
        Index(
            "uq_rollups_copied",
            "flag",
            "interval_start",
            "origin",
            "environment",
            "variant",
            "reason",
            unique=True,
            sqlite_where=_COPIED,
            postgresql_where=_COPIED,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    interval_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    interval_end: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False)
    variant: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    evaluations: Mapped[int] = mapped_column(Integer, nullable=False)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    latency_sum: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    latency_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    latency_buckets: Mapped[list[int]] = mapped_column(JSON, nullable=False, default=list)
    origin: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default="")


class AuditRecord(Base):
    """One action on a flag (or on several: emergency rollback writes one per flag).
    Append-only: `outcome` is the outcome known when the row was written (`pending`,
    `refused`, `dry_run`); what became of a pending one is an `AuditOutcome` row."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_flag_time", "environment", "flag", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    from_state: Mapped[str] = mapped_column(String(16), nullable=False)
    from_percentage: Mapped[float] = mapped_column(Float, nullable=False)
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    to_percentage: Mapped[float] = mapped_column(Float, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    override: Mapped[bool] = mapped_column(default=False, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    guards: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)


class AuditOutcome(Base):
    """What became of an audit record written as *pending*: applied or failed. A
    separate append-only row, so no code path ever updates an audit record."""

    __tablename__ = "audit_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")


class StoredFlag(Base):
    """One flag of one environment for the `sql` flag backend; `version` rises by one
    on every change (optimistic concurrency)."""

    __tablename__ = "flag_definitions"
    __table_args__ = (UniqueConstraint("environment", "flag", name="uq_flag_definitions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class StoredConfig(Base):
    """The non-flag part of one environment's config (version, global, phases) for the
    `sql` flag backend."""

    __tablename__ = "flag_configs"

    environment: Mapped[str] = mapped_column(String(200), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class RequestRollup(Base):
    """HTTP requests of one track (canary / stable) in one environment over one interval,
    with cumulative latency buckets (`REQUEST_LATENCY_BUCKETS`)."""

    __tablename__ = "request_rollups"
    __table_args__ = (Index("ix_request_rollups_env_end", "environment", "interval_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    interval_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    interval_end: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    track: Mapped[str] = mapped_column(String(64), nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)
    errors: Mapped[int] = mapped_column(Integer, nullable=False)
    latency_sum: Mapped[float] = mapped_column(Float, nullable=False)
    latency_count: Mapped[int] = mapped_column(Integer, nullable=False)
    latency_buckets: Mapped[list[int]] = mapped_column(JSON, nullable=False)


class InstanceReport(Base):
    """The config version an instance last said it has loaded (a heartbeat): the
    propagation check's source when there is no Prometheus."""

    __tablename__ = "instance_reports"
    __table_args__ = (UniqueConstraint("environment", "instance", name="uq_instance_reports"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    instance: Mapped[str] = mapped_column(String(200), nullable=False)
    config_version: Mapped[str] = mapped_column(String(200), nullable=False)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class ChangeRequestRow(Base):
    """A change waiting for a second person (`app.approvals`). Its content (what, where,
    the flag versions and guard report at request time) never changes; only `status` and
    the decision move, each move a conditional update from the status it leaves."""

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_status", "status", "environment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    requester: Mapped[str] = mapped_column(String(200), nullable=False)
    requester_account: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    flag: Mapped[str | None] = mapped_column(String(200))
    to_percentage: Mapped[float | None] = mapped_column(Float)
    override: Mapped[bool] = mapped_column(default=False, nullable=False)
    restore_of: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    versions: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False)
    guards: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    comment: Mapped[str] = mapped_column(Text, nullable=False, default="")
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")


class RolloutPlanRow(Base):
    """A flag's rollout plan for the autopilot (`app.autopilot`): one per flag and
    environment. `version` rises by one on every change; every write is a conditional
    update from the version read (of two writers, one wins)."""

    __tablename__ = "rollout_plans"
    __table_args__ = (UniqueConstraint("environment", "flag", name="uq_rollout_plans_flag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False)
    steps: Mapped[list[float]] = mapped_column(JSON, nullable=False)
    soak_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    gates: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    on_failure: Mapped[str] = mapped_column(String(16), nullable=False)
    stop_at: Mapped[float] = mapped_column(Float, nullable=False)
    allowed_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    budget: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status_by: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    status_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expected_state: Mapped[str] = mapped_column(String(16), nullable=False)
    expected_percentage: Mapped[float] = mapped_column(Float, nullable=False)
    actions_taken: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ticks_without_data: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_decision: Mapped[str] = mapped_column(Text, nullable=False, default="")
    last_decision_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    #: the OS account behind a terminal that set it (one account is one pair of eyes)
    created_account: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class AutopilotEventRow(Base):
    """What the autopilot did about a plan (an advance, a rollback, a pause): one row per
    action, with the failed gate and, for a rollback, when the failure was first seen."""

    __tablename__ = "autopilot_events"
    __table_args__ = (Index("ix_autopilot_events_plan", "plan_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    from_percentage: Mapped[float] = mapped_column(Float, nullable=False)
    to_percentage: Mapped[float] = mapped_column(Float, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    audit_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    failure_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    mitigated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AutopilotLeaseRow(Base):
    """Who leads the autopilot (one row per lease name): the holder acts while
    `expires_at` is ahead; a standby takes the row over once it has passed. The same row
    is the controller's heartbeat (last tick, its duration and lag)."""

    __tablename__ = "autopilot_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_tick_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_tick_seconds: Mapped[float | None] = mapped_column(Float)
    interval_seconds: Mapped[float] = mapped_column(Float, nullable=False, default=30.0)
    ticks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class WebhookDeliveryRow(Base):
    """One notification to one webhook and what became of it (handed over, pending,
    delivered, retrying, failed), so a page can show failed deliveries. Never holds the
    webhook's URL."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    webhook: Mapped[str] = mapped_column(String(200), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    flag: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    environment: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    #: the notification (its generic JSON body) of a delivery handed over to the
    #: autopilot by a process that does not wait for webhooks (None: sent by its maker)
    notification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
