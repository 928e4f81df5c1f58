"""Questions about the audit log / rollout history (always from the metrics database)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.metrics_db.schema import AuditOutcome, AuditRecord
from queries.frames import empty_frame
from queries.source import SourceUnavailable

__all__ = ["LAST_CHANGE_COLUMNS", "last_changes"]

#: flag, at (UTC), actor, action, from_percentage, to_percentage
LAST_CHANGE_COLUMNS = ("flag", "at", "actor", "action", "from_percentage", "to_percentage")


def last_changes(
    engine: Engine, environment: str, *, keys: bool = False, guards: bool = False
) -> pd.DataFrame:
    """The newest applied change of every flag in `environment` (one query), `at` when it
    was applied; with `keys`, an `idempotency_key` column too (whose action it was: the
    autopilot's own); with `guards`, the guard report recorded with it (`guards`: what the
    evidence said when it was made).

    A record's outcome is its newest `audit_outcomes` row, or its own `outcome` when it
    has none (records written already settled, such as refusals).
    """
    latest = (
        select(AuditOutcome.audit_id, func.max(AuditOutcome.id).label("outcome_id"))
        .group_by(AuditOutcome.audit_id)
        .subquery()
    )
    effective = func.coalesce(AuditOutcome.outcome, AuditRecord.outcome)
    newest = (
        select(AuditRecord.flag, func.max(AuditRecord.id).label("id"))
        .outerjoin(latest, latest.c.audit_id == AuditRecord.id)
        .outerjoin(AuditOutcome, AuditOutcome.id == latest.c.outcome_id)
        .where(AuditRecord.environment == environment, effective == "applied")
        .group_by(AuditRecord.flag)
        .subquery()
    )
    settled = (
        select(AuditOutcome.audit_id, func.min(AuditOutcome.at).label("at"))
        .where(AuditOutcome.outcome == "applied")
        .group_by(AuditOutcome.audit_id)
        .subquery()
    )
    columns = [
        AuditRecord.flag,
        # when the change took effect: a record written pending and applied later (a
        # tick cut off mid-action, finished by another) counts from its application
        func.coalesce(settled.c.at, AuditRecord.at).label("at"),
        AuditRecord.actor,
        AuditRecord.action,
        AuditRecord.from_percentage,
        AuditRecord.to_percentage,
    ]
    names = list(LAST_CHANGE_COLUMNS)
    if keys:
        columns.append(AuditRecord.idempotency_key)
        names.append("idempotency_key")
    if guards:
        columns.append(AuditRecord.guards)
        names.append("guards")
    query = (
        select(*columns)
        .join(newest, AuditRecord.id == newest.c.id)
        .outerjoin(settled, settled.c.audit_id == AuditRecord.id)
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as error:
        raise SourceUnavailable("metrics database", type(error).__name__) from error
    if not rows:
        return empty_frame(tuple(names))
    return pd.DataFrame([tuple(r) for r in rows], columns=names)
