"""The evidence a restore shows: the guards of the state it puts back, judged over the
window *before* the change it undoes (right after a kill the flag's own guards fail by
construction: nothing soaks or is exposed at 0 %)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from app.audit import AuditEntry, AuditLog, Outcome
from app.flags.backend import FlagSnapshot
from app.flags.model import FlagState
from app.rollout.action_model import EvidenceBefore
from app.rollout.evidence import measured_inputs
from app.rollout.guards import GuardPolicy, GuardResult, evaluate_guards
from queries.source import MetricsSource

__all__ = ["as_found", "evidence_before"]


def evidence_before(
    sources: Sequence[MetricsSource], audit: AuditLog, policy: GuardPolicy
) -> EvidenceBefore:
    """An `EvidenceBefore`: judge the flag as the record's change found it (its step,
    and since when), on the evidence up to the moment the change was made."""

    def judge(snapshot: FlagSnapshot, entry: AuditEntry) -> list[GuardResult]:
        found = as_found(snapshot, entry)
        earlier = [
            e
            for e in audit.entries(
                flag=entry.flag, environment=entry.environment, outcomes=(Outcome.APPLIED,)
            )
            if e.at < entry.at
        ]
        inputs = measured_inputs(
            sources, found, entry.flag, policy, entry.at, earlier[0].at if earlier else None
        )
        return evaluate_guards(inputs, policy)

    return judge


def as_found(snapshot: FlagSnapshot, entry: AuditEntry) -> FlagSnapshot:
    """`snapshot` with `entry`'s flag put back where the recorded change found it."""
    flag = snapshot.flag(entry.flag)
    state = entry.from_state or flag.state
    rollout = flag.rollout
    if state is FlagState.ROLLOUT:
        rollout = rollout.model_copy(update={"percentage": entry.from_percentage})
    before = flag.model_copy(update={"state": state, "rollout": rollout})
    flags = {**snapshot.config.flags, entry.flag: before}
    return replace(snapshot, config=snapshot.config.model_copy(update={"flags": flags}))
