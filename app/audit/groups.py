"""The records of one action: an emergency rollback writes one record per flag, all at
one instant, the first with the request's idempotency key and the others
`<key[:40]>/<flag>`; pages show and restore them as one."""

from __future__ import annotations

from collections.abc import Sequence

from app.audit.model import AuditEntry

__all__ = ["action_groups", "group_key"]


def group_key(key: str) -> str:
    """The part of an idempotency key every record of one action shares."""
    return key.split("/", 1)[0][:40]


def action_groups(entries: Sequence[AuditEntry]) -> dict[str, tuple[AuditEntry, ...]]:
    """Record id → every record of `entries` written by the same action, in id order (a
    record without a key is alone in its group)."""
    groups: dict[tuple[object, ...], list[AuditEntry]] = {}
    for entry in entries:
        if entry.idempotency_key is None:
            at: tuple[object, ...] = ("alone", entry.id)
        else:
            at = (
                entry.at,
                entry.actor,
                str(entry.action),
                entry.environment,
                group_key(entry.idempotency_key),
            )
        groups.setdefault(at, []).append(entry)
    found: dict[str, tuple[AuditEntry, ...]] = {}
    for members in groups.values():
        ordered = tuple(sorted(members, key=lambda e: _id_order(e.id)))
        for entry in ordered:
            found[entry.id] = ordered
    return found


def _id_order(audit_id: str) -> tuple[int, str]:
    return (0, f"{int(audit_id):020d}") if audit_id.isdigit() else (1, audit_id)
