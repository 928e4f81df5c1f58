import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from app.analysis.failures import FlagErrors
from app.analysis.health import Health, HealthThresholds
from app.evidence.gates import GateSettings
from app.flags.loader import load_config
from app.flags.model import FlagState
from app.rollout.evidence import LiveEvidence
from app.rollout.guards import VariantCounts
from app.services.overview import (
    OverviewFilter,
    build_overview_rows,
    filter_rows,
    live_comparisons,
    pending_first,
)
from app.text import flag_detail_url
from app.ui.overview_table import FLAG_LINK_TEXT, overview_display_frame, why_text
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import (
    EVALUATION_RATE_COLUMNS,
    LATENCY_COLUMNS,
    SPARKLINE_COLUMNS,
    empty_frame,
)
from queries.names import ErrorsIn

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = """
version: "1"
flags:
  calm:
    state: rollout
    rollout: {percentage: 25}
    metadata: {phase: 1, description: "steady flag"}
  noisy:
    state: rollout
    rollout: {percentage: 50}
    metadata: {phase: 2}
  slow:
    state: enabled
    metadata: {phase: 1}
  idle:
    state: disabled
  changed:
    state: rollout
    rollout: {percentage: 10}
    metadata: {phase: 3, description: "recently moved"}
"""


@pytest.fixture
def rows(tmp_path: Path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    rates = pd.DataFrame(
        [
            ("calm", "on", 10 / 15),
            ("calm", "off", 5 / 15),
            ("noisy", "on", 1.0),
            ("slow", "on", 2.0),
            ("changed", "on", 1.0),
            ("unconfigured", "on", 9.0),
        ],
        columns=["flag", "variant", "evaluations_per_second"],
    )
    # over a 5-minute window: calm 20 of its 300 evaluations failed, noisy 60 of 300
    errors = {
        "calm": FlagErrors(failed=20, evaluations=300, read_from=ErrorsIn.BOTH),
        "noisy": FlagErrors(failed=60, evaluations=300, read_from=ErrorsIn.BOTH),
    }
    latency = pd.DataFrame(
        [("calm", 0.5, 0.0006), ("calm", 0.99, 0.0009), ("slow", 0.99, 0.3)],
        columns=["flag", "quantile", "seconds"],
    )
    spark = pd.DataFrame(
        [("calm", NOW - timedelta(minutes=m), float(m)) for m in (2, 1, 0)],
        columns=["flag", "timestamp", "evaluations_per_second"],
    )
    changes = pd.DataFrame(
        [
            ("changed", NOW - timedelta(hours=1), "alice", "advance", 5.0, 10.0),
            ("calm", NOW - timedelta(days=3), "bob", "advance", 10.0, 25.0),
        ],
        columns=list(LAST_CHANGE_COLUMNS),
    )
    built = build_overview_rows(
        load_config(path),
        rates,
        errors,
        latency,
        spark,
        changes,
        HealthThresholds(),
        NOW,
        timedelta(hours=24),
    )
    return built


def test_numbers_per_flag(rows):
    calm = next(r for r in rows if r.flag == "calm")
    assert calm.evaluations_per_second == pytest.approx(1.0)
    assert calm.variants == {"off": pytest.approx(1 / 3), "on": pytest.approx(2 / 3)}
    assert calm.error_rate == pytest.approx(1 / 15)
    assert calm.p50_seconds == pytest.approx(0.0006)
    assert calm.p99_seconds == pytest.approx(0.0009)
    assert calm.sparkline == (2.0, 1.0, 0.0)  # oldest first
    assert calm.health is Health.UNHEALTHY  # 6.7 % errors
    assert calm.last_change is not None and calm.last_change.actor == "bob"


def test_unhealthy_first_then_recently_changed_and_unconfigured_flags_ignored(rows):
    assert [r.flag for r in rows] == ["calm", "slow", "noisy", "changed", "idle"]
    assert [r.health for r in rows] == [
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.UNHEALTHY,
        Health.HEALTHY,
        Health.NO_DATA,
    ]


def test_a_flag_with_a_pending_request_leads_its_health_group_unhealthy_still_first(rows):
    moved = pending_first(rows, {"idle", "noisy"})
    assert [r.flag for r in moved] == ["noisy", "calm", "slow", "idle", "changed"]
    # idle has no data: it leads the no-data and healthy group, after every unhealthy flag
    assert [r.flag for r in pending_first(rows, {"idle"})] == [
        "calm",
        "slow",
        "noisy",
        "idle",
        "changed",
    ]
    assert pending_first(rows, set()) == list(rows)


def test_the_request_column_holds_each_flags_marker_only_where_approval_matters(rows):
    assert "Request" not in overview_display_frame(rows, NOW, "staging").columns
    frame = overview_display_frame(rows, NOW, "production", {"noisy": "⏳ #12 → 100 %"})
    assert list(frame.columns[:7]) == [
        "Health",
        "Flag",
        "Why",
        "Phase",
        "State",
        "Rollout %",
        "Request",
    ]
    assert dict(zip([r.flag for r in rows], frame["Request"], strict=True)) == {
        "calm": "",
        "slow": "",
        "noisy": "⏳ #12 → 100 %",
        "changed": "",
        "idle": "",
    }


def test_status_json_fields(rows):
    document = next(r for r in rows if r.flag == "changed").as_json()
    assert document["state"] == "rollout"
    assert document["percentage"] == 10.0
    assert document["health"] == "healthy"
    assert document["last_change"]["actor"] == "alice"
    assert document["last_change"]["to_percentage"] == 10.0
    idle = next(r for r in rows if r.flag == "idle").as_json()
    assert idle["health"] == "no_data" and idle["error_rate"] is None and idle["variants"] == {}


def test_filters_combine(rows):
    assert [r.flag for r in filter_rows(rows, OverviewFilter(phases=frozenset({1})))] == [
        "calm",
        "slow",
    ]
    by_state = filter_rows(rows, OverviewFilter(states=frozenset({FlagState.DISABLED})))
    assert [r.flag for r in by_state] == ["idle"]
    assert [r.flag for r in filter_rows(rows, OverviewFilter(text="MOVED"))] == ["changed"]
    unhealthy_phase_2 = OverviewFilter(phases=frozenset({2}), health=frozenset({Health.UNHEALTHY}))
    assert [r.flag for r in filter_rows(rows, unhealthy_phase_2)] == ["noisy"]


def test_display_frame_formats_what_the_user_reads(rows):
    frame = overview_display_frame(rows, NOW, "production")
    assert frame["Flag"][0] == "/flag_detail?env=production&flag=calm"
    frame = frame.set_index(pd.Index([r.flag for r in rows]))
    assert frame.loc["calm", "Evaluations"] == "1.00/s"
    assert frame.loc["calm", "Variant split"] == "on 67% · off 33%"
    assert frame.loc["calm", "Errors"] == "6.67 %"
    assert frame.loc["calm", "p99"] == "0.90 ms"
    assert frame.loc["calm", "Health"] == "🔴 unhealthy"
    assert frame.loc["changed", "Last change"] == "60 min ago · alice · 5 → 10 %"
    assert frame.loc["idle", "Errors"] == "–"


def test_no_data_anywhere_gives_every_flag_no_data(tmp_path):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(CONFIG)
    rows = build_overview_rows(
        load_config(path),
        empty_frame(EVALUATION_RATE_COLUMNS),
        {},
        empty_frame(LATENCY_COLUMNS),
        empty_frame(SPARKLINE_COLUMNS),
        empty_frame(LAST_CHANGE_COLUMNS),
        HealthThresholds(),
        NOW,
        timedelta(hours=1),
    )
    assert {r.health for r in rows} == {Health.NO_DATA}


def test_every_unhealthy_flag_says_why_and_a_healthy_one_says_nothing(rows):
    why = {r.flag: r.why for r in rows}
    assert why["calm"] == "errors 6.67 % > 5 %"
    assert why["slow"] == "p99 300 ms > 250 ms"
    assert why["noisy"] == "errors 20.00 % > 5 %"
    assert why["changed"] == "" and why["idle"] == ""
    assert next(r for r in rows if r.flag == "calm").as_json()["reasons"] == ["errors 6.67 % > 5 %"]


def test_the_flag_link_opens_its_detail_and_reads_as_the_key():
    url = flag_detail_url("staging", "new_checkout")
    assert url == "/flag_detail?env=staging&flag=new_checkout"
    match = re.search(FLAG_LINK_TEXT, url)
    assert match is not None and match.group(1) == "new_checkout"


def _rows_with(tmp_path, config, rates, changes=None, counts=None, errors=None):
    path = tmp_path / "feature_flags.yaml"
    path.write_text(config)
    loaded = load_config(path)
    live = {
        flag: LiveEvidence(
            (errors or {}).get(flag)
            or FlagErrors(
                sum(c.errors for c in per.values()),
                sum(c.evaluations for c in per.values()),
                ErrorsIn.REASON,
            ),
            per,
            "last 5 min",
        )
        for flag, per in (counts or {}).items()
    }
    return build_overview_rows(
        loaded,
        pd.DataFrame(rates, columns=list(EVALUATION_RATE_COLUMNS)),
        errors or {},
        empty_frame(LATENCY_COLUMNS),
        empty_frame(SPARKLINE_COLUMNS),
        changes if changes is not None else empty_frame(LAST_CHANGE_COLUMNS),
        HealthThresholds(),
        NOW,
        timedelta(hours=24),
        comparisons=live_comparisons(loaded, live, GateSettings()),
    )


SPLIT = """
version: "1"
flags:
  checkout:
    state: rollout
    rollout: {percentage: 50}
"""


def test_a_treatment_proven_worse_than_control_is_not_healthy(tmp_path):
    # 0.9 % vs 0.2 % failed: under every threshold, proven worse at the gate's level
    counts = {
        "checkout": {
            "on": VariantCounts(10_000, 90, 10_000),
            "off": VariantCounts(10_000, 20, 10_000),
        }
    }
    rates = [("checkout", "on", 10.0), ("checkout", "off", 10.0)]
    (row,) = _rows_with(tmp_path, SPLIT, rates, counts=counts)
    assert row.health is Health.DEGRADED
    assert row.why == "on − off +0.70 pt: proven worse"  # the interval is on Flag detail
    (calm,) = _rows_with(tmp_path, SPLIT, rates)  # no per-variant counts: judged as before
    assert calm.health is Health.HEALTHY


def test_the_error_rate_is_the_flags_failures_from_the_one_definition(tmp_path):
    # failures counted only by the error counter (every reason split): still 20 %
    split = {"checkout": {"on": VariantCounts(500, 0, 500), "off": VariantCounts(500, 0, 500)}}
    counted = {"checkout": FlagErrors(failed=200, evaluations=1000, read_from=ErrorsIn.BOTH)}
    rates = [("checkout", "on", 10.0), ("checkout", "off", 10.0)]
    (row,) = _rows_with(tmp_path, SPLIT, rates, counts=split, errors=counted)
    assert row.error_rate == pytest.approx(0.2)
    assert (row.health, row.why) == (Health.UNHEALTHY, "errors 20.00 % > 5 %")


def test_no_treatment_against_control_where_failures_carry_no_variant(tmp_path):
    # the counts that make the treatment worse, from an emitter counting failures only
    # in its counter: they are not failures by variant, so no comparison is made
    counts = {
        "checkout": {
            "on": VariantCounts(10_000, 90, 10_000),
            "off": VariantCounts(10_000, 20, 10_000),
        }
    }
    counter = {"checkout": FlagErrors(failed=0, evaluations=20_000, read_from=ErrorsIn.COUNTER)}
    rates = [("checkout", "on", 10.0), ("checkout", "off", 10.0)]
    (row,) = _rows_with(tmp_path, SPLIT, rates, counts=counts, errors=counter)
    assert (row.health, row.why) == (Health.HEALTHY, "")


KILLED = """
version: "1"
flags:
  checkout:
    state: disabled
    rollout: {percentage: 0}
"""


def _kill(minutes_ago: float, action: str = "kill") -> pd.DataFrame:
    return pd.DataFrame(
        [("checkout", NOW - timedelta(minutes=minutes_ago), "carol", action, 25.0, 0.0)],
        columns=list(LAST_CHANGE_COLUMNS),
    )


def _proven(minutes_ago: float, guards: list[dict[str, object]] | None) -> pd.DataFrame:
    frame = _kill(minutes_ago, "rollback")
    frame["guards"] = [guards]
    return frame


FAILED_ON_DATA = {"name": "error_rate", "passed": False, "on_data": True}


def test_a_flag_rolled_back_on_proof_whose_variant_is_gone_is_mitigated_and_not_red(tmp_path):
    (row,) = _rows_with(tmp_path, KILLED, [("checkout", "off", 1.0)], _proven(12, [FAILED_ON_DATA]))
    assert row.mitigated_at == NOW - timedelta(minutes=12) and row.withdrawn_at is None
    frame = overview_display_frame([row], NOW, "production")
    assert frame["Why"][0] == "mitigated 12 min ago"
    assert frame["Health"][0] == "🟢 healthy"


def test_a_kill_without_evidence_is_not_called_mitigated(tmp_path):
    # a person's kill records no guards: the treatment is out, nothing says it was worse
    (row,) = _rows_with(tmp_path, KILLED, [("checkout", "off", 1.0)], _kill(12))
    assert row.mitigated_at is None and row.withdrawn_at == NOW - timedelta(minutes=12)
    assert why_text(row, NOW) == "treatment out 12 min ago"
    # a rollback on a sample ratio mismatch, or one whose gates passed, proves nothing worse
    srm = {"name": "exposure", "passed": False, "on_data": True}
    (row,) = _rows_with(tmp_path, KILLED, [("checkout", "off", 1.0)], _proven(12, [srm]))
    assert row.mitigated_at is None and row.withdrawn_at is not None


def test_errors_that_go_on_without_the_treatment_are_not_the_flags(tmp_path):
    failing = {"checkout": FlagErrors(failed=60, evaluations=300, read_from=ErrorsIn.BOTH)}
    (row,) = _rows_with(tmp_path, KILLED, [("checkout", "off", 1.0)], _kill(12), errors=failing)
    assert row.health is Health.UNHEALTHY  # not hidden: the kill fixed nothing
    assert why_text(row, NOW) == (
        "treatment out 12 min ago: the errors go on without it, they are not the flag's · "
        "errors 20.00 % > 5 %"
    )


def test_a_kill_still_serving_the_variant_or_an_advance_is_not_mitigated(tmp_path):
    still = _rows_with(
        tmp_path, KILLED, [("checkout", "on", 1.0), ("checkout", "off", 1.0)], _kill(1)
    )
    assert still[0].mitigated_at is None
    advanced = _rows_with(
        tmp_path,
        KILLED,
        [("checkout", "off", 1.0)],
        pd.DataFrame(
            [("checkout", NOW, "alice", "advance", 0.0, 5.0)], columns=list(LAST_CHANGE_COLUMNS)
        ),
    )
    assert advanced[0].mitigated_at is None
