"""Who may do what: viewer (read), operator (advance, rollback), admin (override).

Authorisation happens inside the action functions (`require`), never only by hiding a
button: a forged call from a page or the CLI is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from app.errors import RolloutError

__all__ = ["Identity", "NotAuthorized", "Role", "require", "role_for"]


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return (Role.VIEWER, Role.OPERATOR, Role.ADMIN).index(self)


@dataclass(frozen=True)
class Identity:
    """Someone acting: `name` is what the audit log records; `via` how they were known
    (`demo`, `oidc`, `cli`, `anonymous`); `account` the OS account behind a terminal
    (the CLI), whatever name it declared, so that one account is one pair of eyes."""

    name: str
    role: Role
    via: str
    account: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role}, {self.via})"


class NotAuthorized(RolloutError, PermissionError):
    """The identity's role does not allow the action."""


def require(identity: Identity, needed: Role, action: str) -> None:
    """Raise NotAuthorized unless `identity` holds `needed` or a higher role."""
    if identity.role.rank < needed.rank:
        raise NotAuthorized(f"{identity.name} is {identity.role}: {action} needs the {needed} role")


def role_for(name: str, groups: Iterable[str], mapping: Mapping[str, Role], default: Role) -> Role:
    """The highest role the mapping gives `name` (e-mail or user name, case-insensitive)
    or one of its `groups` (keys `group:<name>`); `default` when none matches."""
    wanted = {name.lower(), *(f"group:{g.lower()}" for g in groups)}
    found = [role for key, role in mapping.items() if key.lower() in wanted]
    return max(found, key=lambda role: role.rank) if found else default
