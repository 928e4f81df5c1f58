"""A change written flag by flag (a backend that is not atomic, such as a flag server):
each flag its own compare-and-set, one audit outcome per flag, and a result that says
what was switched off, what conflicted and what failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.audit import AuditEntry, AuditLog, Outcome
from app.errors import RolloutError
from app.flags.backend import (
    FlagBackend,
    FlagChange,
    FlagSnapshot,
    PartiallyApplied,
    UnknownFlag,
    VersionConflict,
)
from app.flags.loader import ConfigInvalid
from app.rollout.action_audit import settle_applied
from app.rollout.action_model import (
    Action,
    ActionPlan,
    ActionResult,
    FlagOutcome,
    FlagOutcomeStatus,
)
from app.rollout.exit_codes import ExitCode
from app.rollout.planning import flag_now
from queries.source import SourceUnavailable

__all__ = ["apply_flag_by_flag", "partial_outcomes", "per_flag_result"]


def apply_flag_by_flag(
    plan: ActionPlan,
    backend: FlagBackend,
    audit: AuditLog,
    pending: Sequence[AuditEntry],
    changes: Sequence[FlagChange],
    versions: Mapping[str, str],
) -> ActionResult:
    """The changes on a backend that writes flag by flag, each its own compare-and-set:
    a flag refused before any write (stale, gone, read-only) is set aside and the rest
    sent again; the backend goes on after a conflict once writing. One audit outcome per
    flag; a flag written but not read back stays pending (reconciliation settles it)."""
    environment = plan.request.environment
    outcomes: dict[str, FlagOutcome] = {}
    remaining = list(changes)
    fresh: FlagSnapshot | None = None
    down: SourceUnavailable | None = None
    while remaining:
        try:
            fresh = backend.apply(
                environment, remaining, {c.flag: versions[c.flag] for c in remaining}
            )
        except VersionConflict as conflict:  # refused before any write
            fresh = conflict.current
            for flag in conflict.flags:
                said = flag_now(audit, conflict.current, flag)
                outcomes[flag] = _conflicted(said)
            remaining = [c for c in remaining if c.flag not in conflict.flags]
            continue
        except UnknownFlag as unknown:
            outcomes[unknown.flag] = _failed(str(unknown))
            remaining = [c for c in remaining if c.flag != unknown.flag]
            continue
        except ConfigInvalid as invalid:
            named = {issue.flag for issue in invalid.issues if issue.flag}
            if not named & {c.flag for c in remaining}:
                outcomes |= {c.flag: _failed(str(invalid)) for c in remaining}
                break
            outcomes |= {i.flag: _failed(i.message) for i in invalid.issues if i.flag}
            remaining = [c for c in remaining if c.flag not in named]
            continue
        except PartiallyApplied as partial:
            fresh = partial.current
            outcomes |= partial_outcomes(partial, audit)
            break
        except SourceUnavailable as error:
            down = error
            outcomes |= {c.flag: _failed(str(error)) for c in remaining}
            break
        except (OSError, RolloutError) as error:
            outcomes |= {c.flag: _failed(str(error)) for c in remaining}
            break
        outcomes |= {c.flag: _APPLIED for c in remaining}
        break
    return per_flag_result(plan, audit, pending, outcomes, fresh, down=down)


def partial_outcomes(partial: PartiallyApplied, audit: AuditLog) -> dict[str, FlagOutcome]:
    """Each flag's outcome as a PartiallyApplied tells it."""
    outcomes = {flag: _APPLIED for flag in partial.applied}
    for flag in partial.conflicted:
        said = flag_now(audit, partial.current, flag) if partial.current else flag
        outcomes[flag] = _conflicted(said)
    outcomes |= {flag: _failed(reason) for flag, reason in partial.failed.items()}
    outcomes |= {
        flag: FlagOutcome(FlagOutcomeStatus.UNVERIFIED, why)
        for flag, why in partial.unverified.items()
    }
    return outcomes


def per_flag_result(
    plan: ActionPlan,
    audit: AuditLog,
    pending: Sequence[AuditEntry],
    outcomes: Mapping[str, FlagOutcome],
    fresh: FlagSnapshot | None,
    receipts: Mapping[str, str] | None = None,
    down: SourceUnavailable | None = None,
) -> ActionResult:
    """Settle each flag's record as its outcome says (a flag with none was not
    attempted), and say what was switched off, what conflicted and what failed."""
    receipts = dict(receipts or (fresh.receipts if fresh is not None else {}))
    full = {
        e.flag: outcomes.get(e.flag, _failed("not attempted after an earlier failure"))
        for e in pending
    }
    applied = [e for e in pending if full[e.flag].status is FlagOutcomeStatus.APPLIED]
    settled = {e.id: e for e in settle_applied(audit, applied, receipts)}
    for entry in pending:
        if entry.id not in settled:
            said = full[entry.flag]
            if said.status is FlagOutcomeStatus.UNVERIFIED:
                settled[entry.id] = entry  # stays pending: reconciliation compares later
                continue
            # a flag that moved meanwhile was refused (nothing went wrong), else failed
            outcome = (
                Outcome.REFUSED if said.status is FlagOutcomeStatus.CONFLICTED else Outcome.FAILED
            )
            settled[entry.id] = audit.settle(entry, outcome, said.detail)
    by_status: dict[FlagOutcomeStatus, list[str]] = {status: [] for status in FlagOutcomeStatus}
    for flag, said in full.items():
        by_status[said.status].append(flag)
    done = by_status[FlagOutcomeStatus.APPLIED]
    conflicted = by_status[FlagOutcomeStatus.CONFLICTED]
    failed = [f"{flag} ({full[flag].detail})" for flag in by_status[FlagOutcomeStatus.FAILED]]
    unverified = by_status[FlagOutcomeStatus.UNVERIFIED]
    verb = "switched off" if plan.request.action is Action.EMERGENCY else "applied"
    error = None
    if conflicted or failed or unverified:
        parts = [f"{verb}: {', '.join(done) or 'none'}"]
        if conflicted:
            parts.append(f"conflicted: {', '.join(conflicted)}")
        if failed:
            parts.append(f"failed: {'; '.join(failed)}")
        if unverified:
            parts.append(
                f"written but not read back (pending until reconciled): {', '.join(unverified)}"
            )
        error = "; ".join(parts)
    code = (
        ExitCode.UNAVAILABLE
        if down is not None or failed or unverified
        else ExitCode.CONFLICT
        if conflicted
        else ExitCode.DONE
    )
    return ActionResult(
        not (conflicted or failed or unverified),
        code,
        plan,
        tuple(settled[e.id] for e in pending),
        error,
        fresh,
        per_flag=full,
    )


_APPLIED = FlagOutcome(FlagOutcomeStatus.APPLIED)


def _conflicted(said: str) -> FlagOutcome:
    """Refused before any write: `said` is what the flag is now and who changed it."""
    return FlagOutcome(FlagOutcomeStatus.CONFLICTED, f"changed concurrently — {said}")


def _failed(why: str) -> FlagOutcome:
    return FlagOutcome(FlagOutcomeStatus.FAILED, why)
