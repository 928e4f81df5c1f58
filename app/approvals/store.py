"""Change requests in the metrics database.

A request's content is written once. Its status moves only by `move`, a conditional
update from the status it leaves: of two approvers pressing at once, exactly one moves
it, so exactly one applies it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.approvals.model import ChangeRequest, RequestStatus, transition_from_json, transition_json
from app.errors import RolloutError
from app.metrics_db.schema import ChangeRequestRow
from app.rollout.action_model import Action
from app.rollout.approval_gate import GateUnavailable

__all__ = ["ApprovalsUnavailable", "DuplicateRequest", "RequestStore"]


class ApprovalsUnavailable(GateUnavailable, RuntimeError):
    """The metrics database, which holds the change requests, cannot be used."""

    def __init__(self, why: str) -> None:
        super().__init__(f"change requests need the metrics database, which {why}")


class DuplicateRequest(RolloutError, RuntimeError):
    """A request with this idempotency key exists (a double click): `existing` is it."""

    def __init__(self, existing: ChangeRequest) -> None:
        super().__init__(f"change request #{existing.id} has this idempotency key")
        self.existing = existing


class RequestStore:
    """The change requests of one metrics database (None: unavailable)."""

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine

    def add(self, change: ChangeRequest) -> ChangeRequest:
        """Store `change`; returns it with its id. DuplicateRequest for a used key."""
        engine = self._usable()
        try:
            with engine.begin() as connection:
                new_id = connection.execute(
                    insert(ChangeRequestRow).values(**_row(change)).returning(ChangeRequestRow.id)
                ).scalar_one()
        except IntegrityError:
            existing = self.find_key(change.idempotency_key)
            if existing is None:
                raise
            raise DuplicateRequest(existing) from None
        except SQLAlchemyError as error:
            raise ApprovalsUnavailable(f"cannot be written ({type(error).__name__})") from None
        return replace(change, id=str(new_id))

    def get(self, request_id: str) -> ChangeRequest | None:
        """The request `request_id` (`12` or `#12`); None when there is none."""
        text = request_id.strip().lstrip("#")
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            return None
        found = self._select(ChangeRequestRow.id == int(text), limit=1)
        return found[0] if found else None

    def find_key(self, key: str) -> ChangeRequest | None:
        found = self._select(ChangeRequestRow.idempotency_key == key, limit=1)
        return found[0] if found else None

    def matching(
        self,
        *,
        environment: str | None = None,
        statuses: Collection[RequestStatus] = (),
        limit: int = 500,
    ) -> list[ChangeRequest]:
        """Newest first, narrowed by every criterion given."""
        conditions: list[Any] = []
        if environment is not None:
            conditions.append(ChangeRequestRow.environment == environment)
        if statuses:
            conditions.append(ChangeRequestRow.status.in_([str(s) for s in statuses]))
        return self._select(*conditions, limit=limit)

    def move(
        self,
        request_id: str,
        leaving: RequestStatus,
        to: RequestStatus,
        *,
        by: str | None = None,
        at: datetime | None = None,
        comment: str | None = None,
        detail: str | None = None,
    ) -> bool:
        """Move the request from `leaving` to `to` (with who, when and why); False when it
        was no longer `leaving` (someone else moved it first)."""
        values: dict[str, Any] = {"status": str(to)}
        if by is not None:
            values |= {"decided_by": by, "decided_at": at}
        if comment is not None:
            values["comment"] = comment
        if detail is not None:
            values["detail"] = detail
        engine = self._usable()
        try:
            with engine.begin() as connection:
                moved = connection.execute(
                    update(ChangeRequestRow)
                    .where(
                        ChangeRequestRow.id == int(request_id),
                        ChangeRequestRow.status == str(leaving),
                    )
                    .values(**values)
                ).rowcount
        except SQLAlchemyError as error:
            raise ApprovalsUnavailable(f"cannot be written ({type(error).__name__})") from None
        return bool(moved == 1)

    def _usable(self) -> Engine:
        if self._engine is None:
            raise ApprovalsUnavailable("is unavailable")
        return self._engine

    def _select(self, *conditions: Any, limit: int) -> list[ChangeRequest]:
        engine = self._usable()
        query = (
            select(ChangeRequestRow.__table__)
            .where(*conditions)
            .order_by(ChangeRequestRow.id.desc())
            .limit(limit)
        )
        try:
            with engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as error:
            raise ApprovalsUnavailable(f"cannot be read ({type(error).__name__})") from None
        return [_request(row) for row in rows]


def _row(change: ChangeRequest) -> dict[str, Any]:
    return {
        "created_at": change.created_at,
        "expires_at": change.expires_at,
        "requester": change.requester,
        "requester_account": change.requester_account,
        "environment": change.environment,
        "action": str(change.action),
        "flag": change.flag,
        "to_percentage": change.to_percentage,
        "override": change.override,
        "restore_of": change.restore_of,
        "reason": change.reason,
        "transitions": [transition_json(t) for t in change.transitions],
        "versions": dict(change.versions),
        "guards": [dict(g) for g in change.guards],
        "idempotency_key": change.idempotency_key,
        "status": str(change.status),
        "decided_by": change.decided_by,
        "decided_at": change.decided_at,
        "comment": change.comment,
        "detail": change.detail,
    }


def _request(row: Any) -> ChangeRequest:
    transitions: Sequence[dict[str, Any]] = row.transitions
    return ChangeRequest(
        created_at=row.created_at,
        expires_at=row.expires_at,
        requester=row.requester,
        requester_account=row.requester_account,
        environment=row.environment,
        action=Action(row.action),
        reason=row.reason,
        transitions=tuple(transition_from_json(t) for t in transitions),
        versions=dict(row.versions),
        idempotency_key=row.idempotency_key,
        flag=row.flag,
        to_percentage=row.to_percentage,
        override=row.override,
        restore_of=row.restore_of,
        guards=tuple(row.guards),
        status=RequestStatus(row.status),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        detail=row.detail,
        id=str(row.id),
    )
