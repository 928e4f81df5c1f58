"""The audit log: every action, change request and plan change, append-only and never
lost. Used by the actions (`app.rollout`), the approvals, the autopilot and the phase
history alike.

- `model`: an audit record (`AuditEntry`), what it records (`RecordedAction`), its
  `Outcome`, and `describe_change`;
- `log`: `AuditLog`, the records in the metrics database with a local journal when the
  database cannot be written;
- `changes`: `who_changed`, who made a flag's newest change, in words;
- `groups`: `action_groups`, the records one action wrote (an emergency rollback's).
"""

from app.audit.changes import OutsideEdit, who_changed
from app.audit.groups import action_groups
from app.audit.log import AuditLog
from app.audit.model import (
    AuditEntry,
    DuplicateKey,
    Outcome,
    RecordedAction,
    describe_change,
    state_text,
)

__all__ = [
    "AuditEntry",
    "AuditLog",
    "DuplicateKey",
    "Outcome",
    "OutsideEdit",
    "RecordedAction",
    "action_groups",
    "describe_change",
    "state_text",
    "who_changed",
]
