"""Who changed a flag last, in words: the one text both an action refused as a
conflict and the action dialog's "changed since you looked" say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, overload

from app.audit.log import AuditLog
from app.audit.model import describe_change

__all__ = ["OutsideEdit", "who_changed"]


class OutsideEdit(Protocol):
    """A change made in the flag server itself, not through the dashboard (the Unleash
    backend's `ExternalChange`)."""

    @property
    def at(self) -> datetime: ...
    @property
    def label(self) -> str: ...


@overload
def who_changed(audit: AuditLog, environment: str, flag: str) -> str | None: ...
@overload
def who_changed(
    audit: AuditLog,
    environment: str,
    flag: str,
    outside: OutsideEdit | None,
    say_age: Callable[[float], str],
) -> str | None: ...
def who_changed(
    audit: AuditLog,
    environment: str,
    flag: str,
    outside: OutsideEdit | None = None,
    say_age: Callable[[float], str] | None = None,
) -> str | None:
    """Who made the newest change of `flag`: the audit log's last applied record ("olga
    2026-12-02 00:58:12 UTC rollout 25 % → rollout 10 %"), or the flag server's own edit
    (`outside`, with its age in seconds as `say_age` words it) when that is newer; None
    when neither is known (an edit outside the log)."""
    last = audit.latest_applied(environment, flag)
    if outside is not None and say_age is not None and (last is None or outside.at > last.at):
        age = say_age((datetime.now(UTC) - outside.at).total_seconds())
        return f"{outside.label} ({age} ago)"
    return describe_change(last) if last is not None else None
