"""A flag's failed evaluations, one definition for every view: read where the emitter
counts them (`ErrorsIn`), each failure once, whichever preset or source gave the counts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from app.analysis.failures import (
    FlagErrors,
    errors_by_flag,
    flag_errors,
    is_error_reason,
    reason_errors,
)
from app.metrics_db.database import insert_rollups, open_database
from app.rollout.evidence import measure_environment, variant_counts, variant_counts_by_flag
from app.rollout.guards import VariantCounts
from queries.names import FAILED_VARIANT, PRESETS, ErrorsIn, MetricNames, MetricPreset
from queries.sql import SqlMetrics
from tests.support.workload import reference_rollups

SEED = PRESETS[MetricPreset.SEED]
OPENFEATURE = PRESETS[MetricPreset.OPENFEATURE]
UNLEASH = PRESETS[MetricPreset.UNLEASH]


def _counts(*rows: tuple[str, str, float]) -> dict[str, VariantCounts]:
    """Per variant, as a source's (variant, reason, evaluations) rows tally."""
    frame = pd.DataFrame(list(rows), columns=["variant", "reason", "evaluations"])
    return variant_counts(frame)


#: 1,000 evaluations; 200 failed, counted only in the error counter (reason split):
#: a service with a separate error counter, the bug of issue 21
COUNTER_ONLY = _counts(("on", "split", 250), ("off", "split", 750))
#: the same 200 failures counted only as evaluations with reason error
REASON_ONLY = _counts(("on", "split", 50), ("on", "error", 200), ("off", "split", 750))
#: counted in both, as the seed's record_flag_evaluation does
IN_BOTH = REASON_ONLY


@pytest.mark.parametrize(
    ("errors_in", "variants", "counter", "failed"),
    [
        # in the counter only: the counter sees them, reasons do not
        (ErrorsIn.COUNTER, COUNTER_ONLY, 200.0, 200.0),
        (ErrorsIn.BOTH, COUNTER_ONLY, 200.0, 200.0),
        (ErrorsIn.REASON, COUNTER_ONLY, 200.0, 0.0),
        # as reason error only: only REASON reads them
        (ErrorsIn.REASON, REASON_ONLY, 0.0, 200.0),
        (ErrorsIn.COUNTER, REASON_ONLY, 0.0, 0.0),
        # in both: counted once whichever is read, never 400
        (ErrorsIn.BOTH, IN_BOTH, 200.0, 200.0),
        (ErrorsIn.COUNTER, IN_BOTH, 200.0, 200.0),
        (ErrorsIn.REASON, IN_BOTH, 200.0, 200.0),
    ],
)
def test_failures_are_read_where_the_emitter_counts_them_and_counted_once(
    errors_in: ErrorsIn, variants: dict[str, VariantCounts], counter: float, failed: float
) -> None:
    errors = flag_errors(errors_in, variants.values(), counter)
    assert errors == FlagErrors(failed=failed, evaluations=1000.0, read_from=errors_in)
    assert errors.rate == pytest.approx(failed / 1000)


def test_the_seed_preset_reads_the_counter_so_a_counter_only_emitter_shows_its_errors() -> None:
    assert SEED.failures_in is ErrorsIn.BOTH
    errors = flag_errors(SEED.failures_in, COUNTER_ONLY.values(), 200.0)
    assert errors.rate == pytest.approx(0.2)
    assert errors.per_variant  # the seed gives the variant on failed evaluations


def test_openfeature_counts_its_failures_once_though_they_are_also_evaluations() -> None:
    # what the openfeature source answers: the error counter added to the evaluations
    # as variant (error), reason ERROR (evaluations = successes + errors), and the counter
    assert OPENFEATURE.failures_in is ErrorsIn.COUNTER
    variants = _counts(("on", "SPLIT", 200), ("off", "SPLIT", 600), (FAILED_VARIANT, "ERROR", 200))
    errors = flag_errors(OPENFEATURE.failures_in, variants.values(), 200.0)
    assert (errors.failed, errors.evaluations) == (200.0, 1000.0)
    assert errors.rate == pytest.approx(0.2)
    assert not errors.per_variant  # failed evaluations carry no variant


def test_unleash_has_no_counter_and_no_reason_so_nothing_fails() -> None:
    assert UNLEASH.failures_in is ErrorsIn.REASON
    variants = _counts(("true", "", 300), ("false", "", 700))
    errors = flag_errors(UNLEASH.failures_in, variants.values(), 0.0)
    assert (errors.failed, errors.evaluations, errors.rate) == (0.0, 1000.0, 0.0)


def test_a_preset_without_its_counter_reads_the_reasons() -> None:
    names = replace(MetricNames(), errors="")
    errors = flag_errors(names.failures_in, REASON_ONLY.values(), 0.0)
    assert errors.rate == pytest.approx(0.2)


@dataclass(frozen=True)
class _Rollup:
    """A metrics-database roll-up row: its `errors` column is the counter."""

    flag: str
    variant: str
    reason: str
    evaluations: int
    errors: int


def test_sql_rollups_read_their_errors_column_once() -> None:
    # the reference evaluator's roll-ups count a failure in both (reason error, errors
    # column); a copied roll-up may count it in the column only (reason default)
    rollups = [
        _Rollup("both", "on", "split", 50, 0),
        _Rollup("both", "on", "error", 200, 200),
        _Rollup("both", "off", "split", 750, 0),
        _Rollup("column", "on", "split", 250, 0),
        _Rollup("column", "off", "default", 750, 200),
    ]
    counts = variant_counts_by_flag(
        pd.DataFrame(
            [(r.flag, r.variant, r.reason, r.evaluations) for r in rollups],
            columns=["flag", "variant", "reason", "evaluations"],
        )
    )
    counter: dict[str, float] = {}
    for r in rollups:
        counter[r.flag] = counter.get(r.flag, 0.0) + r.errors
    errors = errors_by_flag(ErrorsIn.BOTH, counts, counter)
    assert {flag: e.rate for flag, e in errors.items()} == {"both": 0.2, "column": 0.2}


def test_the_rollup_source_reads_its_errors_column(tmp_path: Path) -> None:
    # the reference workload counts production alpha's one failure per 15 s in the
    # errors column of an evaluation with reason default: 1 of 15, no reason says error
    end = datetime(2026, 5, 1, 12, tzinfo=UTC)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    insert_rollups(engine, reference_rollups(end, hours=0.25))
    source = SqlMetrics(engine)
    assert source.errors_in is ErrorsIn.BOTH
    start = (end - timedelta(minutes=5)).timestamp()
    measured = measure_environment(source, "production", start, end, 30.0)
    assert measured.slots is not None and measured.errors_in is ErrorsIn.BOTH
    alpha = measured.slots["alpha"].errors_since(start, ErrorsIn.BOTH)
    assert alpha == FlagErrors(20.0, 300.0, ErrorsIn.BOTH)
    assert measured.slots["beta"].errors_since(start, ErrorsIn.BOTH).rate == 0.0
    engine.dispose()


def test_every_flag_with_evaluations_or_failures_gets_its_errors() -> None:
    counts = {"seen": COUNTER_ONLY, "quiet": _counts(("on", "split", 10))}
    errors = errors_by_flag(ErrorsIn.BOTH, counts, {"seen": 200.0, "gone": 3.0})
    assert errors["seen"].rate == pytest.approx(0.2)
    assert errors["quiet"] == FlagErrors(0.0, 10.0, ErrorsIn.BOTH)  # no counter series: none
    assert errors["gone"].rate is None  # failures but no evaluation: nothing to divide by


def test_without_a_counter_answer_the_reasons_hold_the_failures() -> None:
    assert reason_errors(REASON_ONLY.values()) == FlagErrors(200.0, 1000.0, ErrorsIn.REASON)
    assert reason_errors([]).rate is None


@pytest.mark.parametrize("reason", ["error", "ERROR", "Error"])
def test_reason_error_in_any_case(reason: str) -> None:
    assert is_error_reason(reason)


@pytest.mark.parametrize("reason", ["split", "default", "", None, float("nan"), "errors"])
def test_other_reasons_are_not_failures(reason: object) -> None:
    assert not is_error_reason(reason)


def test_a_counter_above_the_evaluations_reads_as_every_one_failed() -> None:
    # scrapes a moment apart: the counter may run a little ahead of the evaluations
    assert flag_errors(ErrorsIn.COUNTER, COUNTER_ONLY.values(), 1001.0).rate == 1.0
