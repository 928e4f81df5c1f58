"""The audit log: append-only, and never lost.

Every action is written *before* the change (outcome `pending`, or `refused` /
`dry_run` when nothing will change) and its result after, as a separate outcome row:
no code path updates or deletes a record. When the metrics database cannot be written,
records and outcomes go to a local journal file (one JSON object per line, fsynced),
which `replay_journal` moves into the database once it is back. `reconcile_pending`
settles records left pending by a crash, by comparing them with the flags as they are.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.audit.model import (
    AuditEntry,
    DuplicateKey,
    Outcome,
    RecordedAction,
    read_state,
    state_text,
)
from app.metrics_db.schema import AuditOutcome, AuditRecord
from app.recorded import recognised

__all__ = ["AuditLog"]


_RECORD_FIELDS = (
    "at",
    "actor",
    "action",
    "flag",
    "environment",
    "from_state",
    "from_percentage",
    "to_state",
    "to_percentage",
    "reason",
    "outcome",
    "override",
    "idempotency_key",
    "guards",
)


class AuditLog:
    """The audit log over the metrics database (may be None: journal only) and a
    journal file. Thread-safe; several processes may share the database."""

    def __init__(self, engine: Engine | None, journal: Path) -> None:
        self._engine = engine
        self._journal = journal
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append `entry`; returns it with its id. DuplicateKey if its idempotency key is
        already recorded (in the database or the journal). Falls back to the journal
        when the database cannot be written."""
        if entry.idempotency_key is not None:
            existing = self.find_key(entry.idempotency_key)
            if existing is not None:
                raise DuplicateKey(existing)
        if self._engine is not None:
            try:
                with self._engine.begin() as connection:
                    new_id = connection.execute(
                        insert(AuditRecord).values(**_row(entry)).returning(AuditRecord.id)
                    ).scalar_one()
                return replace(entry, id=str(new_id))
            except IntegrityError:
                existing = self.find_key(entry.idempotency_key or "")
                if existing is not None:
                    raise DuplicateKey(existing) from None
                raise
            except SQLAlchemyError:
                pass  # the database is down: the journal keeps the record
        local = replace(entry, id=f"j-{uuid.uuid4().hex[:12]}")
        self._append({"type": "record", "id": local.id, **_row(local)})
        return local

    def record_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """Append several entries in one transaction (an emergency rollback writes one per
        flag); DuplicateKey if any key is already recorded. Journal on a database error."""
        keys = [e.idempotency_key for e in entries if e.idempotency_key is not None]
        for entry in self._journal_entries():
            if entry.idempotency_key in keys:
                raise DuplicateKey(entry)
        if self._engine is not None:
            try:
                # A used key is rare: the unique index finds it, no query before.
                with self._engine.begin() as connection:
                    ids = (
                        connection.execute(
                            insert(AuditRecord).returning(
                                AuditRecord.id, sort_by_parameter_order=True
                            ),
                            [_row(entry) for entry in entries],
                        )
                        .scalars()
                        .all()
                    )
                return [replace(e, id=str(i)) for e, i in zip(entries, ids, strict=True)]
            except IntegrityError:
                raise DuplicateKey(self._recorded(keys) or entries[0]) from None
            except SQLAlchemyError:
                pass
        local = [replace(e, id=f"j-{uuid.uuid4().hex[:12]}") for e in entries]
        for entry in local:
            self._append({"type": "record", "id": entry.id, **_row(entry)})
        return local

    def _recorded(self, keys: Sequence[str | None]) -> AuditEntry | None:
        """A database entry holding one of `keys`; None if none (or unreadable)."""
        try:
            found = self._query(AuditRecord.idempotency_key.in_(keys), limit=1) if keys else []
        except SQLAlchemyError:
            return None
        return found[0] if found else None

    def settle_many(
        self, entries: Sequence[AuditEntry], outcome: Outcome, detail: str = ""
    ) -> list[AuditEntry]:
        """`settle` for several entries, in one transaction where the database has them."""
        stored = [e for e in entries if not e.id.startswith("j-")]
        if self._engine is not None and stored:
            at = datetime.now(UTC)
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        insert(AuditOutcome),
                        [
                            {
                                "audit_id": int(e.id),
                                "at": at,
                                "outcome": str(outcome),
                                "detail": detail,
                            }
                            for e in stored
                        ],
                    )
                stored_ids = {e.id for e in stored}
                rest = [e for e in entries if e.id not in stored_ids]
                for entry in rest:
                    self.settle(entry, outcome, detail)
                return [replace(e, outcome=outcome, detail=detail) for e in entries]
            except SQLAlchemyError:
                pass
        return [self.settle(entry, outcome, detail) for entry in entries]

    def settle(self, entry: AuditEntry, outcome: Outcome, detail: str = "") -> AuditEntry:
        """Record what became of a pending entry (applied / failed)."""
        at = datetime.now(UTC)
        if self._engine is not None and not entry.id.startswith("j-"):
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        insert(AuditOutcome).values(
                            audit_id=int(entry.id), at=at, outcome=str(outcome), detail=detail
                        )
                    )
                return replace(entry, outcome=outcome, detail=detail)
            except SQLAlchemyError:
                pass
        self._append(
            {
                "type": "outcome",
                "id": entry.id,
                "at": at.isoformat(),
                "outcome": str(outcome),
                "detail": detail,
            }
        )
        return replace(entry, outcome=outcome, detail=detail)

    # -- reading -----------------------------------------------------------------

    def find_key(self, key: str) -> AuditEntry | None:
        """The entry recorded with idempotency key `key`, if any (database or journal)."""
        for entry in self._journal_entries():
            if entry.idempotency_key == key:
                return entry
        if self._engine is None:
            return None
        try:
            # The index answers the usual case, a new key, without `_query`'s join.
            with self._engine.connect() as connection:
                stored = connection.execute(
                    select(AuditRecord.id).where(AuditRecord.idempotency_key == key)
                ).scalar()
            found = self._query(AuditRecord.id == stored, limit=1) if stored is not None else []
        except SQLAlchemyError:
            return None
        return found[0] if found else None

    def get(self, audit_id: str) -> AuditEntry | None:
        """The record `audit_id` (a database id or a journal `j-…` id) with its newest
        outcome; None when there is no such record (or the id is not one)."""
        audit_id = audit_id.strip().lstrip("#")
        for entry in self._journal_entries():
            if entry.id == audit_id:
                return entry
        # ASCII digits only: "²" and "٣" pass str.isdigit() but are no record's id.
        if self._engine is None or not _DATABASE_ID.fullmatch(audit_id):
            return None
        try:
            found = self._query(AuditRecord.id == int(audit_id), limit=1)
        except SQLAlchemyError:
            return None
        return found[0] if found else None

    def latest_applied(self, environment: str, flag: str) -> AuditEntry | None:
        """The newest applied change of `flag` in `environment` (who changed it last)."""
        found = self.entries(flag, environment=environment, outcomes=(Outcome.APPLIED,), limit=1)
        return found[0] if found else None

    def action_group(self, entry: AuditEntry) -> list[AuditEntry]:
        """Every record written by the action that wrote `entry` (an emergency rollback
        writes one per flag, all at one instant, the first with the request's idempotency
        key and the others `<key[:40]>/<flag>`), in recorded order; just `entry` when it
        has no key."""
        if entry.idempotency_key is None:
            return [entry]
        base = _group_key(entry.idempotency_key)
        same = self.entries(environment=entry.environment, since=entry.at, limit=100_000)
        group = [
            e
            for e in same
            if e.at == entry.at
            and e.actor == entry.actor
            and e.action == entry.action
            and e.idempotency_key is not None
            and _group_key(e.idempotency_key) == base
        ]
        return sorted(group or [entry], key=lambda e: _id_order(e.id))

    def entries(
        self,
        flag: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
        *,
        environment: str | None = None,
        outcomes: Collection[Outcome] = (),
        actor: str = "",
    ) -> list[AuditEntry]:
        """Newest first, database and journal together, narrowed by every criterion given
        (`actor`: a case-insensitive part of the name). A database that cannot be read
        shows only the journal (see `database_ok`)."""
        conditions: list[Any] = []
        if flag is not None:
            conditions.append(AuditRecord.flag == flag)
        if environment is not None:
            conditions.append(AuditRecord.environment == environment)
        if since is not None:
            conditions.append(AuditRecord.at >= since)
        if actor:
            conditions.append(
                func.lower(AuditRecord.actor).contains(actor.lower(), autoescape=True)
            )
        stored: list[AuditEntry] = []
        if self._engine is not None:
            try:
                # The newest outcome is only known after the join: filter on it below.
                stored = self._query(*conditions, limit=limit if not outcomes else 100_000)
            except SQLAlchemyError:
                stored = []
        local = [
            e
            for e in self._journal_entries()
            if (flag is None or e.flag == flag)
            and (environment is None or e.environment == environment)
            and (since is None or e.at >= since)
            and actor.lower() in e.actor.lower()
        ]
        found = [e for e in [*stored, *local] if not outcomes or e.outcome in outcomes]
        return sorted(found, key=lambda e: e.at, reverse=True)[:limit]

    def database_ok(self) -> bool:
        if self._engine is None:
            return False
        try:
            with self._engine.connect() as connection:
                connection.execute(select(func.count()).select_from(AuditRecord).limit(1))
        except SQLAlchemyError:
            return False
        return True

    def pending_in_journal(self) -> int:
        return sum(1 for _ in self._journal_lines())

    # -- recovery ----------------------------------------------------------------

    def replay_journal(self) -> int:
        """Move journal records and outcomes into the database; returns how many
        records moved. The journal is emptied only after the database accepted all."""
        if self._engine is None:
            return 0
        with self._lock:
            lines = list(self._journal_lines())
            if not lines:
                return 0
            ids: dict[str, int] = {}
            moved = 0
            try:
                with self._engine.begin() as connection:
                    for line in lines:
                        if line["type"] == "record":
                            existing = (
                                connection.execute(
                                    select(AuditRecord.id).where(
                                        AuditRecord.idempotency_key == line["idempotency_key"]
                                    )
                                ).scalar()
                                if line.get("idempotency_key")
                                else None
                            )
                            if existing is not None:
                                ids[line["id"]] = int(existing)
                                continue
                            values = _from_json(line)
                            ids[line["id"]] = connection.execute(
                                insert(AuditRecord).values(**values).returning(AuditRecord.id)
                            ).scalar_one()
                            moved += 1
                        else:
                            target = ids.get(line["id"]) or _database_id(line["id"])
                            if target is None:
                                continue
                            connection.execute(
                                insert(AuditOutcome).values(
                                    audit_id=target,
                                    at=datetime.fromisoformat(line["at"]),
                                    outcome=line["outcome"],
                                    detail=line.get("detail", ""),
                                )
                            )
            except SQLAlchemyError:
                return 0
            done = self._journal.with_name(
                f"{self._journal.name}.replayed-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
            )
            os.replace(self._journal, done)
            return moved

    def reconcile_pending(
        self,
        is_applied: Callable[[AuditEntry], bool],
        older_than: timedelta = timedelta(minutes=5),
        now: datetime | None = None,
    ) -> int:
        """Settle every entry left pending by a crash between the record and its
        outcome: applied if `is_applied(entry)` says the flag is at `to`, else failed.

        Only entries older than `older_than` are touched: a younger one may be another
        replica's action still in flight (an action takes well under a second).
        """
        cutoff = (now or datetime.now(UTC)) - older_than
        settled = 0
        for entry in self.entries(limit=100_000):
            if entry.outcome is Outcome.PENDING and entry.at < cutoff:
                outcome = Outcome.APPLIED if is_applied(entry) else Outcome.FAILED
                self.settle(entry, outcome, "reconciled after an interrupted action")
                settled += 1
        return settled

    # -- plumbing ----------------------------------------------------------------

    def _query(self, *conditions: Any, limit: int = 1000) -> list[AuditEntry]:
        assert self._engine is not None
        newest = (
            select(AuditOutcome.audit_id, func.max(AuditOutcome.id).label("outcome_id"))
            .group_by(AuditOutcome.audit_id)
            .subquery()
        )
        query = (
            select(
                *AuditRecord.__table__.c,
                AuditOutcome.outcome.label("latest_outcome"),
                AuditOutcome.detail.label("latest_detail"),
            )
            .outerjoin(newest, newest.c.audit_id == AuditRecord.id)
            .outerjoin(AuditOutcome, AuditOutcome.id == newest.c.outcome_id)
            .where(*conditions)
            .order_by(AuditRecord.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        result = []
        for row in rows:
            record = row._mapping
            outcome = Outcome(record["latest_outcome"] or record["outcome"])
            detail = record["latest_detail"] or ""
            result.append(_entry(record, str(record["id"]), outcome, detail))
        return result

    def _append(self, document: dict[str, Any]) -> None:
        with self._lock:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            with self._journal.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(document, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _journal_lines(self) -> Iterator[dict[str, Any]]:
        if not self._journal.exists():
            return
        with self._journal.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by a crash mid-write carries nothing usable

    def _journal_entries(self) -> list[AuditEntry]:
        records: dict[str, AuditEntry] = {}
        for line in self._journal_lines():
            if line["type"] == "record":
                values = _from_json(line)
                outcome = Outcome(values["outcome"])
                records[line["id"]] = _entry(values, line["id"], outcome)
            elif line["id"] in records:
                records[line["id"]] = replace(
                    records[line["id"]],
                    outcome=Outcome(line["outcome"]),
                    detail=line.get("detail", ""),
                )
        return list(records.values())


_DATABASE_ID = re.compile(r"[0-9]{1,18}")


def _group_key(key: str) -> str:
    return key.split("/", 1)[0][:40]


def _id_order(audit_id: str) -> tuple[int, str]:
    return (0, f"{int(audit_id):020d}") if audit_id.isdigit() else (1, audit_id)


def _row(entry: AuditEntry) -> dict[str, Any]:
    # Not `asdict`: its deep copy of the guards was most of the audit's time in an
    # emergency rollback (500 entries); the row is only read.
    values = {name: getattr(entry, name) for name in _RECORD_FIELDS}
    return values | {
        "action": str(entry.action),
        "from_state": state_text(entry.from_state),
        "to_state": state_text(entry.to_state),
        "outcome": str(entry.outcome),
    }


def _entry(
    stored: Mapping[Any, Any], audit_id: str, outcome: Outcome, detail: str = ""
) -> AuditEntry:
    """A stored record (a database row, a journal line) as an entry; an action or a state
    this version does not know is kept readable, never refused."""
    return AuditEntry(
        at=stored["at"],
        actor=stored["actor"],
        action=recognised(RecordedAction, stored["action"]),
        flag=stored["flag"],
        environment=stored["environment"],
        from_state=read_state(stored["from_state"]),
        from_percentage=stored["from_percentage"],
        to_state=read_state(stored["to_state"]),
        to_percentage=stored["to_percentage"],
        reason=stored["reason"],
        outcome=outcome,
        override=stored["override"],
        idempotency_key=stored["idempotency_key"],
        guards=stored["guards"],
        id=audit_id,
        detail=detail,
    )


def _from_json(line: dict[str, Any]) -> dict[str, Any]:
    values = {name: line[name] for name in _RECORD_FIELDS}
    values["at"] = datetime.fromisoformat(values["at"])
    return values


def _database_id(audit_id: str) -> int | None:
    return None if audit_id.startswith("j-") else int(audit_id)
