"""Four-eyes approval: in the environments that need it, a change that raises exposure
(an advance, a restore that goes up, any guard override) becomes a change request that
another operator approves or rejects. The safe direction (rollback, kill, emergency
rollback) never waits.

- `model`: the change request and the rule of what needs approval (plain functions);
- `store`: the requests in the metrics database, each status move a conditional update;
- `service`: request, approve, reject, cancel and expire, each step an audit record.
"""

from app.approvals.model import ChangeRequest, RequestStatus, raises_exposure
from app.approvals.service import Approvals, Decision
from app.approvals.store import ApprovalsUnavailable, RequestStore

__all__ = [
    "Approvals",
    "ApprovalsUnavailable",
    "ChangeRequest",
    "Decision",
    "RequestStatus",
    "RequestStore",
    "raises_exposure",
]
