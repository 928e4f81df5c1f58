"""What a page says about the emitter behind the metric names: what it cannot tell.

Pure text from a `MetricNames` (the preset with its overrides): each thing the emitter
does not export gets one sentence, so a blank panel is never a mystery.
"""

from __future__ import annotations

from queries.names import FAILED_VARIANT, ErrorsIn, Evidence, MetricNames

__all__ = ["emitter_notes", "errors_note", "single_environment_note"]


def single_environment_note(names: MetricNames, environment: str) -> str | None:
    """The environment selector's note in single-environment mode; None otherwise."""
    if not names.single_environment:
        return None
    return (
        f"Single-environment mode: `{names.evaluations}` carries no environment label, so "
        f"every series counts as `{environment}` (ROLLOUT_ENVIRONMENT), the only "
        "environment offered."
    )


def errors_note(names: MetricNames) -> str:
    """Where this emitter counts a failed evaluation and what the error rate reads, so
    that each failure counts once (`app.analysis.failures.flag_errors`)."""
    counter, reason = f"`{names.errors}`", f"`{names.evaluations}` with reason `error`"
    if not names.errors:
        if not names.reason_label:
            return "No error counter and no reason label: error rates read 0."
        return f"No error counter: the failed evaluations are {reason} (in any case)."
    if names.errors_in is ErrorsIn.COUNTER:
        return (
            f"Errors: a failed evaluation counts only in {counter}, with no variant: the error "
            "rate reads that counter; the treatment-against-control error test is not "
            "available from this emitter."
        )
    if names.errors_in is ErrorsIn.REASON:
        return (
            f"Errors: a failed evaluation counts only as {reason} (in any case): the error "
            f"rate reads those, not {counter}."
        )
    return (
        f"Errors: a failed evaluation counts both in {counter} and as {reason}: the error "
        "rate reads the counter, each failure once."
    )


def emitter_notes(names: MetricNames, pass_without_evidence: bool = False) -> list[str]:
    """One sentence per thing this emitter does not export or counts its own way."""
    missing = names.missing
    guard = "passes" if pass_without_evidence else "fails closed"
    notes = []
    if names.environment_joined:
        notes.append(
            f"Environment: the `{names.environment_label}` label of `{names.environment_info}`, "
            f"joined on ({', '.join(names.environment_join)})."
        )
    if Evidence.VARIANT in missing:
        notes.append(
            f"No variant label: the split shown is `{names.variant_label}` true/false "
            "(whether the flag was on for the evaluation); the exposure guard is not "
            f"available from this emitter and {guard} by policy."
        )
    elif Evidence.SPLIT_REASON in missing:
        notes.append(
            "No reason label: the exposure guard is not available from this emitter and "
            f"{guard} by policy."
        )
    if not names.errors_counted_in_evaluations and names.errors:
        notes.append(
            f"Evaluations are `{names.evaluations}` plus `{names.errors}`; failed "
            f"evaluations show as variant `{FAILED_VARIANT}`."
        )
    if Evidence.ERRORS in missing or names.errors_in is not ErrorsIn.BOTH:
        notes.append(errors_note(names))
    if Evidence.LATENCY in missing:
        notes.append("Latency: not available from this emitter (no duration histogram).")
    if Evidence.CONFIG_VERSION in missing:
        notes.append(
            "Propagation: not available from this emitter (no config-version metric); "
            f"the advance guard {guard} by policy (ROLLOUT_GUARD_WITHOUT_EVIDENCE)."
        )
    return notes
