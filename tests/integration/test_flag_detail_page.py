"""The flag detail page in Streamlit's AppTest against a seeded SQLite database: the
numbers it shows are the seeded ones."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.audit import AuditEntry, AuditLog, Outcome
from app.evidence.windows import first_whole_slot, slot_end_at_or_before
from app.flags.loader import load_config
from app.flags.yaml_backend import YamlFlagBackend
from app.metrics_db.database import insert_rollups, open_database, report_instance
from app.metrics_db.records import EvaluationRollup
from app.rollout.evidence import gather_guard_inputs
from app.rollout.guards import GuardPolicy
from app.services.flag_detail import (
    FlagDetail,
    flag_detail_sources,
    history_table,
    load_flag_detail,
    schedule_table,
    variant_error_table,
)
from queries.sources import Sources
from tests.support.workload import reference_rollups

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
PAGE = "../pages/flag_detail.py"

FLAGS = """
version: "3"
flags:
  alpha:
    state: rollout
    rollout:
      strategy: gradual
      percentage: 50
      schedule:
        - {at: "2020-01-01T00:00:00Z", percentage: 25}
        - {at: "2999-01-01T09:00:00Z", percentage: 75}
    metadata: {phase: 1}
  checkout:
    state: disabled
    rollout: {percentage: 25}
    metadata: {phase: 1}
"""

#: checkout's "on" evaluations stop with the 15 s interval ending at DROP, 40 s after the kill
KILL_TO_DROP = timedelta(seconds=40)


def _floor15(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(moment.timestamp() / 15) * 15, tz=UTC)


def _record(audit: AuditLog, at, actor, action, flag, before, after, outcome) -> None:
    entry = audit.record(
        AuditEntry(
            at=at,
            actor=actor,
            action=action,
            flag=flag,
            environment="production",
            from_state="rollout",
            from_percentage=before,
            to_state="rollout" if after else "disabled",
            to_percentage=after,
            reason="test",
            outcome=Outcome.PENDING,
        )
    )
    audit.settle(entry, outcome)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment):
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    now = datetime.now(UTC)
    base = _floor15(now)
    # alpha: 10 "on" (split) and 5 "off" (default) every 15 s, up to an hour from now
    insert_rollups(engine, reference_rollups(base + timedelta(hours=1), 2.0))
    drop = base - timedelta(minutes=10)
    kill_at = drop - KILL_TO_DROP
    checkout = []
    for index in range(120, -240, -1):
        start = base - timedelta(seconds=15 * index)
        served = start + timedelta(seconds=15) <= drop
        for variant, reason, count in (("on", "split", 10 if served else 0), ("off", "default", 5)):
            checkout.append(
                EvaluationRollup(start, 15, "production", "checkout", variant, reason, count)
            )
    insert_rollups(engine, checkout)
    audit = AuditLog(engine, tmp_path / "audit-journal.jsonl")
    _record(audit, now - timedelta(days=10), "bob", "advance", "alpha", 10, 25, Outcome.APPLIED)
    _record(audit, now - timedelta(days=8), "alice", "advance", "alpha", 25, 50, Outcome.APPLIED)
    _record(
        audit, now - timedelta(minutes=1), "mallory", "advance", "alpha", 50, 100, Outcome.FAILED
    )
    _record(audit, kill_at, "carol", "kill", "checkout", 25, 0, Outcome.APPLIED)
    wanted = load_config(tmp_path / "feature_flags.yaml", "production").loaded_version
    report_instance(engine, "production", "web-1", wanted, now)
    report_instance(engine, "production", "web-2", "2+0ld", now)
    engine.dispose()
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield wanted
    st.cache_resource.clear()


def _open(flag: str, range_name: str | None = None) -> AppTest:
    app = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    app.query_params["flag"] = flag
    if range_name is not None:
        app.query_params["range"] = range_name
    at = app.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _shapes(at: AppTest) -> list[int]:
    """How many change lines each Plotly chart carries."""
    charts = at.get("plotly_chart")
    return [len(json.loads(chart.proto.spec)["layout"].get("shapes", [])) for chart in charts]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _detail(state: Path, flag: str, range_name: str = "1h") -> FlagDetail:
    """The flag detail as the page loads it, from the seeded state directory."""
    engine = open_database(f"sqlite:///{state / 'metrics.db'}")
    try:
        snapshot = YamlFlagBackend(state / "feature_flags.yaml").load("production")
        audit = AuditLog(engine, state / "audit-journal.jsonl")
        history = audit.entries(flag=flag, environment="production", limit=100)
        now = datetime.now(UTC)
        sources = Sources(None, engine)
        return load_flag_detail(
            flag_detail_sources(sources),
            snapshot,
            flag,
            history,
            range_name,
            now,
            judged=gather_guard_inputs(
                sources.metrics(), audit, snapshot, flag, GuardPolicy(), now
            ),
        )
    finally:
        engine.dispose()


def test_thirty_days_read_the_rollups_beyond_prometheus_retention(seeded, tmp_path):
    detail = _detail(tmp_path, "alpha", "30d")
    assert detail.beyond_retention and detail.source == "sql"


def test_both_applied_changes_are_marked_and_the_failed_one_is_not(seeded, tmp_path):
    detail = _detail(tmp_path, "alpha", "30d")
    assert [c.label for c in detail.changes] == ["10 → 25 % · bob", "25 → 50 % · alice"]
    table = history_table(detail.history)
    assert list(table["Change"]) == ["50 → 100 %", "25 → 50 %", "10 → 25 %"]
    assert list(table["Outcome"]) == ["failed", "applied", "applied"]


def test_exposure_of_two_thirds_at_fifty_percent_is_a_sample_ratio_mismatch(seeded, tmp_path):
    detail = _detail(tmp_path, "alpha", "30d")
    gates = detail.gates
    assert gates is not None and gates.share == 0.5
    # the guards' window: the step began 8 days ago, judged on its newest day
    assert detail.window.startswith("since ") and "of a step that began 8 d" in detail.window
    assert gates.exposure.estimate == pytest.approx(2 / 3)
    assert gates.exposure.fired and not gates.exposure.within


def test_eight_days_at_fifty_percent_is_stuck(seeded, tmp_path):
    age = _detail(tmp_path, "alpha", "30d").step_age
    assert age is not None and age.stuck and age.percentage == 50
    assert age.age is not None and timedelta(days=8) <= age.age < timedelta(days=8, minutes=5)


def test_the_gradual_schedule_marks_done_and_next(seeded, tmp_path):
    detail = _detail(tmp_path, "alpha", "30d")
    table = schedule_table(detail)
    assert list(table["Percentage"]) == ["25 %", "75 %"]
    assert list(table["Status"]) == ["done", "next"]
    assert detail.next_step is not None and detail.next_step.percentage == 75


def test_the_database_knows_no_per_instance_percentage(seeded, tmp_path):
    assert _detail(tmp_path, "alpha", "30d").applied_percentages is None


def test_errors_by_variant_of_a_flag_that_never_fails(seeded, tmp_path):
    detail = _detail(tmp_path, "checkout")
    table = variant_error_table(detail.variant_errors).set_index("Variant")
    assert list(table.index) == ["off", "on"]
    # since the kill, as the guards count: "off" gets 5 every 15 s of whole 30 s slots
    kill = next(e.at for e in detail.history if e.action == "kill")
    assert detail.window.startswith("since the step began 10 min")
    slots = slot_end_at_or_before(detail.end.timestamp() + 15, 30) - first_whole_slot(
        kill.timestamp(), 30
    )
    assert table.loc["off", "Evaluations"] in {f"{5 * (slots - d) / 15:,.0f}" for d in (0, 30)}
    assert table.loc["off", "Error rate"] == "0.00 %"
    assert table.loc["on", "Error rate"] == "0.00 %"
    difference = detail.gates.difference if detail.gates else None
    assert difference is not None and difference.estimate == 0.0 and not difference.fired


def test_thirty_days_page_smoke(seeded):
    """The page draws every panel of the 30-day view with the numbers above."""
    at = _open("alpha", "30d")
    assert any("reads the metrics database roll-ups" in i.value for i in at.info)
    assert at.query_params["range"] == "30d"
    # both applied changes on each of the three charts; the failed one is not drawn
    # (then the evidence chart: treatment − control with its limit line, never fired)
    assert _shapes(at) == [2, 2, 2, 1]
    metrics = _metrics(at)
    assert metrics["Configured"] == "50 %"
    assert metrics["Observed"] == "66.67 %"
    assert any(
        e.value.startswith("Sample ratio mismatch proven ") and "66.67 % observed" in e.value
        for e in at.error
    )
    assert any(w.value.startswith("Stuck: at 50 % for 8 d") for w in at.warning)
    captions = " ".join(c.value for c in at.caption)
    assert "Per-instance applied percentage: not available from the database." in captions
    assert "Next step: 75 % at 2999-01-01 09:00 UTC" in captions
    assert "2 applied change(s) drawn" in captions


def test_default_range_is_an_hour_without_the_retention_notice(seeded):
    at = _open("alpha")
    assert at.query_params["range"] == "1h"
    assert not any("roll-ups" in i.value for i in at.info)
    assert _shapes(at) == [0, 0, 0, 1]  # both changes are days old; the evidence's limit
    assert "Source: **metrics database roll-ups**" in " ".join(c.value for c in at.caption)


def test_after_a_kill_the_page_shows_propagation_and_time_to_mitigate(seeded):
    wanted = seeded
    at = _open("checkout")
    # the kill on the evaluation and error charts and on the rate chart around it (the
    # seeded roll-ups carry no latency); between them the evidence chart's limit line
    assert _shapes(at) == [1, 1, 1, 1]
    assert any(i.value == "No latency observations in this range." for i in at.info)
    assert any(
        w.value == f"1 of 2 instances loaded config {wanted}; behind: web-2" for w in at.warning
    )
    # the first 15 s step without an "on" evaluation ends 55 s after the kill
    # a person's kill records no evidence that the treatment was worse: not "mitigate"
    assert _metrics(at)["Time to take the treatment out ('on' below 1 % of its rate before)"] == (
        "55 s"
    )
    assert any(
        c.value.startswith("Nothing recorded with the kill proves the treatment was worse")
        for c in at.caption
    )


PARTIAL = """
version: "3"
flags:
  gamma:
    state: rollout
    rollout: {percentage: 1}
"""


def test_after_a_partial_rollback_time_to_mitigate_is_the_share_reaching_the_target(
    tmp_path: Path, no_rollout_environment
):
    """5 → 1 %: "on" gets 5 of 100 split evaluations every 15 s, then 1 of 100 from the
    interval ending 40 s after the rollback; the share is within 2 points of 1 % from
    the first step after that (55 s after the rollback, as for the kill above)."""
    (tmp_path / "feature_flags.yaml").write_text(PARTIAL)
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    base = _floor15(datetime.now(UTC))
    drop = base - timedelta(minutes=10)
    rollback_at = drop - KILL_TO_DROP
    rollups = []
    for index in range(120, 0, -1):
        start = base - timedelta(seconds=15 * index)
        on = 5 if start + timedelta(seconds=15) <= drop else 1
        rollups += [
            EvaluationRollup(start, 15, "production", "gamma", "on", "split", on),
            EvaluationRollup(start, 15, "production", "gamma", "off", "default", 100 - on),
        ]
    insert_rollups(engine, rollups)
    audit = AuditLog(engine, tmp_path / "audit-journal.jsonl")
    _record(audit, rollback_at, "carol", "rollback", "gamma", 5, 1, Outcome.APPLIED)
    engine.dispose()
    mitigation = _detail(tmp_path, "gamma").mitigation
    assert mitigation is not None and mitigation.target == pytest.approx(0.01)
    assert mitigation.elapsed == timedelta(seconds=55)
    # reads in "'on' is not (yet) … after the rollback" and in "Time to mitigate (…)"
    assert mitigation.goal == "at a share within 2 points of 1 %"


def test_right_after_a_change_exposure_waits_for_the_first_slot_not_a_mismatch(seeded, tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    audit = AuditLog(engine, tmp_path / "audit-journal.jsonl")
    just_now = datetime.now(UTC) - timedelta(seconds=5)
    _record(audit, just_now, "dave", "advance", "alpha", 25, 50, Outcome.APPLIED)
    engine.dispose()
    detail = _detail(tmp_path, "alpha")
    assert detail.gates is None  # nothing of the new step is judged yet
    assert "and its first whole 30 s slot has not ended (judged from " in detail.window
    assert detail.window.endswith(" UTC)")
    at = _open("alpha")
    assert any(i.value.startswith("No split evaluations yet: the step began") for i in at.info), [
        i.value for i in at.info
    ]
    assert not any("Sample ratio mismatch" in e.value for e in at.error)
