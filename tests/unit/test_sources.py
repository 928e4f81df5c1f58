"""One way to ask the sources: Prometheus first, then the roll-ups; a source that cannot
answer is named in `notices` with what happens next, and its numbers are not used."""

from __future__ import annotations

import contextvars
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from app.analysis.health import Health, HealthThresholds
from app.audit import AuditLog
from app.flags.backend import FlagSnapshot
from app.flags.loader import load_config
from app.rollout.evidence import gather_guard_inputs
from app.rollout.guards import GuardPolicy, evaluate_guards
from app.services.overview import load_overview
from queries import frames
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import empty_frame
from queries.histogram import check_quantiles
from queries.names import ErrorsIn
from queries.prometheus import PrometheusMetrics
from queries.series_math import covered_seconds, newest_time
from queries.source import QueryLog, SourceUnavailable, counting_queries
from queries.sources import Sources

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
REFUSED = "prometheus unavailable: connection refused"
CONFIG = """
version: "1"
flags:
  checkout:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 20}
"""


class Down:
    """A Prometheus that refuses every question (after counting it)."""

    name = "prometheus"

    def __init__(self) -> None:
        self.issued: QueryLog = QueryLog()

    def __getattr__(self, question: str):  # every MetricsSource question
        def refuse(*_: object, **__: object) -> pd.DataFrame:
            self.issued.append(question)
            raise SourceUnavailable("prometheus", "connection refused")

        return refuse


class Rollups:
    """Roll-ups answering with one flag's numbers, one statement per question."""

    name = "sql"
    errors_in = ErrorsIn.BOTH

    def __init__(self) -> None:
        self.issued: QueryLog = QueryLog()

    def _sent(self, question: str, frame: pd.DataFrame) -> pd.DataFrame:
        self.issued.append(question)
        return frame

    def evaluation_rates(self, *_: object, **__: object) -> pd.DataFrame:
        rows = [("checkout", "on", 2.0), ("checkout", "off", 8.0)]
        return self._sent("rates", pd.DataFrame(rows, columns=list(frames.EVALUATION_RATE_COLUMNS)))

    def error_rates(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("errors", empty_frame(frames.ERROR_RATE_COLUMNS))

    def error_counts(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("error counts", empty_frame(frames.ERROR_COUNT_COLUMNS))

    def latency_quantiles(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("latency", empty_frame(frames.LATENCY_COLUMNS))

    def evaluation_sparklines(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("sparklines", empty_frame(frames.SPARKLINE_COLUMNS))

    def newest_sample_time(self, *_: object, **__: object) -> datetime:
        self.issued.append("newest")
        return NOW - timedelta(seconds=30)

    def flag_counts(self, *_: object, **__: object) -> pd.DataFrame:
        rows = [("on", "split", 200.0), ("off", "split", 800.0)]
        return self._sent("counts", pd.DataFrame(rows, columns=list(frames.FLAG_COUNT_COLUMNS)))

    def variant_counts(self, *_: object, **__: object) -> pd.DataFrame:
        rows = [("checkout", "on", "split", 200.0), ("checkout", "off", "split", 800.0)]
        return self._sent(
            "variant counts", pd.DataFrame(rows, columns=list(frames.VARIANT_COUNT_COLUMNS))
        )

    def slot_counts(self, *_: object, **__: object) -> pd.DataFrame:
        end = NOW.timestamp()  # the last whole slot: 1,000 evaluations, 20 % on
        rows = [("checkout", "on", "split", end, 200.0), ("checkout", "off", "split", end, 800.0)]
        return self._sent(
            "slot counts", pd.DataFrame(rows, columns=list(frames.SLOT_COUNT_COLUMNS))
        )

    def slot_error_counts(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("slot error counts", empty_frame(frames.SLOT_ERROR_COLUMNS))

    def instance_versions(self, *_: object, **__: object) -> pd.DataFrame:
        return self._sent("versions", empty_frame(frames.INSTANCE_VERSION_COLUMNS))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "feature_flags.yaml"
    path.write_text(textwrap.dedent(CONFIG).lstrip("\n"), encoding="utf-8")
    return path


def _overview(config_path: Path, sources: list[object], notices: tuple[str, ...] = ()):
    return load_overview(
        config=load_config(config_path),
        environment="production",
        sources=sources,  # type: ignore[arg-type]
        changes=empty_frame(LAST_CHANGE_COLUMNS),
        thresholds=HealthThresholds(),
        window=timedelta(minutes=5),
        sparkline_span=timedelta(hours=1),
        at=NOW,
        recent=timedelta(hours=1),
        notices=notices,
    )


def test_overview_falls_back_to_the_rollups_and_names_prometheus(config_path: Path) -> None:
    rollups = Rollups()
    overview = _overview(config_path, [Down(), rollups], notices=("journal replayed",))
    assert overview.source == "sql"
    assert overview.notices == (
        "journal replayed",
        f"{REFUSED} — showing the next source.",
    )
    assert overview.queries == 6 == len(rollups.issued)  # the roll-ups' own queries only
    (row,) = overview.rows
    assert row.evaluations_per_second == 10.0
    assert row.variants == {"off": 0.8, "on": 0.2}
    assert overview.data_age_seconds == 30.0


def test_overview_with_no_source_answering_shows_no_data(config_path: Path) -> None:
    overview = _overview(config_path, [Down()])
    assert overview.source == "none"
    assert overview.queries == 0
    assert overview.notices == (
        f"{REFUSED} — showing the next source.",
        "No metrics source answered: numbers are unavailable.",
    )
    assert [row.health for row in overview.rows] == [Health.NO_DATA]


def _guard_inputs(config_path: Path, tmp_path: Path, sources: list[object]):
    snapshot = FlagSnapshot("production", load_config(config_path, "production"))
    audit = AuditLog(None, tmp_path / "journal.jsonl")
    return gather_guard_inputs(
        sources,  # type: ignore[arg-type]
        audit,
        snapshot,
        "checkout",
        GuardPolicy(),
        NOW,
    )


def test_guard_evidence_comes_from_the_first_source_that_answers(
    config_path: Path, tmp_path: Path
) -> None:
    inputs = _guard_inputs(config_path, tmp_path, [Down(), Rollups()])
    assert inputs.source == "sql"
    assert inputs.notices == (f"{REFUSED} — trying the next source.",)
    assert inputs.newest_sample == NOW - timedelta(seconds=30)
    assert inputs.variants is not None and inputs.variants["on"].evaluations == 200.0
    assert inputs.instance_versions == {}


class CounterOnly(Rollups):
    """Roll-ups whose failures are in the error counter only: 250 of checkout's 1,000."""

    def slot_error_counts(self, *_: object, **__: object) -> pd.DataFrame:
        rows = [("checkout", NOW.timestamp(), 250.0)]
        return self._sent(
            "slot error counts", pd.DataFrame(rows, columns=list(frames.SLOT_ERROR_COLUMNS))
        )


def test_guard_evidence_asks_four_questions_and_reads_the_flags_errors_from_the_counter(
    config_path: Path, tmp_path: Path
) -> None:
    source = CounterOnly()
    inputs = _guard_inputs(config_path, tmp_path, [source])
    assert source.issued == ["newest", "slot counts", "slot error counts", "versions"]
    assert inputs.errors is not None and inputs.errors.rate == 0.25
    guard = {g.name: g for g in evaluate_guards(inputs, GuardPolicy())}["error_rate"]
    assert (guard.passed, guard.value, guard.on_data) == (False, 0.25, True)
    assert guard.window == "over the last 15 min"
    assert guard.detail.startswith("25.00 % of 1000 evaluations failed: proven above 1 %")


def test_guard_evidence_with_no_source_fails_closed_naming_why(
    config_path: Path, tmp_path: Path
) -> None:
    inputs = _guard_inputs(config_path, tmp_path, [Down()])
    assert (inputs.source, inputs.newest_sample, inputs.variants) == ("", None, None)
    fresh = evaluate_guards(inputs, GuardPolicy())[0]
    assert fresh.name == "data_fresh" and not fresh.passed
    assert fresh.detail == f"no data: {REFUSED} — trying the next source."


def test_sources_list_prometheus_first_then_the_rollups() -> None:
    assert Sources().metrics() == [] and Sources().canary() == []
    prometheus = PrometheusMetrics("http://127.0.0.1:9")
    sources = Sources(prometheus, create_engine("sqlite://"))
    assert [source.name for source in sources.metrics()] == ["prometheus", "sql"]
    assert sources.metrics()[0] is prometheus
    assert [source.name for source in sources.canary()] == ["prometheus", "sql"]
    assert [(series.name, metrics.name) for series, metrics in sources.flag_series()] == [
        ("prometheus", "prometheus"),
        ("sql", "sql"),
    ]


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1, 1.5])
def test_quantiles_must_be_strictly_between_0_and_1(quantile: float) -> None:
    with pytest.raises(ValueError, match=r"strictly within 0\.\.1"):
        check_quantiles((0.5, quantile))
    check_quantiles((0.5, 0.99))


def test_covered_seconds_per_step_at_most_the_step_and_none_after_the_end() -> None:
    start = datetime(2026, 5, 1, 12, tzinfo=UTC)
    step = timedelta(minutes=1)
    intervals = [
        (start - timedelta(seconds=30), 30.0),  # in (start - step, start]
        (start + timedelta(seconds=30), 30.0),
        (start + timedelta(seconds=60), 30.0),  # same step as the one before
        (start + timedelta(seconds=60, microseconds=1), 45.0),  # past the end
    ]
    covered = covered_seconds(intervals, start, start + step, step)
    assert covered == {start: 30.0, start + step: 60.0}
    # naive database times are UTC
    naive = [(datetime(2026, 5, 1, 12), 90.0)]
    assert covered_seconds(naive, start, start, step) == {start: 60.0}


def test_newest_time_is_utc_whatever_the_database_returned() -> None:
    aware = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert newest_time(None) is None
    assert newest_time(aware) == aware
    assert newest_time(datetime(2026, 5, 1, 12)) == aware
    assert newest_time("2026-05-01 12:00:00.000000") == aware
    assert newest_time("2026-05-01T14:00:00+02:00") == aware
    assert newest_time(aware).tzinfo is UTC  # type: ignore[union-attr]


def test_each_caller_counts_only_its_own_queries_on_a_shared_source() -> None:
    shared = QueryLog()
    counts: dict[str, int] = {}
    started = threading.Barrier(2)

    def viewer(name: str, queries: int) -> None:
        with counting_queries() as sent:
            started.wait()
            # half sent here, half by helper threads running in a copy of this context
            with ThreadPoolExecutor(2) as pool:
                for i in range(queries // 2):
                    pool.submit(contextvars.copy_context().run, shared.append, f"{name} {i}")
            for i in range(queries // 2, queries):
                shared.append(f"{name} {i}")
        counts[name] = sent.count

    threads = [threading.Thread(target=viewer, args=(n, q)) for n, q in (("a", 400), ("b", 60))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {"a": 400, "b": 60}
    assert len(shared) == 460
    shared.append("outside any count")
    assert counts == {"a": 400, "b": 60} and len(shared) == 461
