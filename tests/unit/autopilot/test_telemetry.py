"""What the autopilot counts about its ticks (app/autopilot/telemetry.py), read back from
its registry as Prometheus would scrape it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.autopilot.controller import PlanOutcome, TickReport
from app.autopilot.decide import Decision, Move
from app.autopilot.store import PlanCensus
from app.autopilot.telemetry import AutopilotMetrics, action_result
from app.rollout.action_model import ActionResult
from app.rollout.exit_codes import ExitCode
from tests.unit.autopilot.test_decide import plan

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def sample(metrics: AutopilotMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def outcome(move: Move, applied: ActionResult | None = None, attempted: ActionResult | None = None):
    return PlanOutcome(plan(), Decision(move, "why"), "why", applied, attempted)


def result(code: ExitCode) -> ActionResult:
    return ActionResult(code is ExitCode.DONE, code, None)


def test_every_series_exists_before_the_first_tick() -> None:
    metrics = AutopilotMetrics()
    for kind in ("leader", "standby", "database_unavailable", "error"):
        assert sample(metrics, "rollout_autopilot_ticks_total", outcome=kind) == 0
    for status in ("active", "paused", "aborted"):
        assert sample(metrics, "rollout_autopilot_plans", status=status) == 0
    assert sample(metrics, "rollout_autopilot_leader") == 0


def test_a_leading_tick_counts_its_decisions_actions_and_plans() -> None:
    metrics = AutopilotMetrics()
    report = TickReport(
        AT,
        True,
        "a:1",
        (
            outcome(Move.ADVANCE, applied=result(ExitCode.DONE)),
            outcome(Move.WAIT, attempted=result(ExitCode.UNAVAILABLE)),  # write failed
            outcome(Move.PAUSE, attempted=result(ExitCode.CONFLICT)),  # changed meanwhile
            outcome(Move.WAIT),
            outcome(Move.HOLD),
        ),
        seconds=0.3,
    )
    metrics.tick_done(report, PlanCensus({"active": 4, "paused": 2, "aborted": 1}, 1))
    assert sample(metrics, "rollout_autopilot_ticks_total", outcome="leader") == 1
    assert sample(metrics, "rollout_autopilot_leader") == 1
    assert sample(metrics, "rollout_autopilot_last_tick_timestamp_seconds") == AT.timestamp()
    assert sample(metrics, "rollout_autopilot_last_leader_tick_timestamp_seconds") == AT.timestamp()
    assert sample(metrics, "rollout_autopilot_tick_duration_seconds_count") == 1
    assert sample(metrics, "rollout_autopilot_tick_duration_seconds_sum") == 0.3
    assert sample(metrics, "rollout_autopilot_tick_duration_seconds_bucket", le="0.5") == 1
    assert sample(metrics, "rollout_autopilot_tick_duration_seconds_bucket", le="0.25") == 0
    for move, n in (("advance", 1), ("wait", 2), ("pause", 1), ("hold", 1)):
        assert sample(metrics, "rollout_autopilot_decisions_total", move=move) == n
    # no request plan in these results: the action is unknown, the result is not
    for kind, n in (("applied", 1), ("failed", 1), ("refused", 1)):
        assert (
            sample(metrics, "rollout_autopilot_actions_total", action="unknown", result=kind) == n
        )
    assert sample(metrics, "rollout_autopilot_plans", status="paused") == 2
    assert sample(metrics, "rollout_autopilot_plans_paused_without_data") == 1


def test_a_standby_tick_clears_the_leaders_gauges_and_a_failed_tick_is_no_lead() -> None:
    metrics = AutopilotMetrics()
    metrics.tick_done(TickReport(AT, True, "a:1"), PlanCensus({"active": 3}, 2))
    later = AT + timedelta(seconds=30)
    metrics.tick_done(TickReport(later, False, "b:2", seconds=0.01))
    assert sample(metrics, "rollout_autopilot_ticks_total", outcome="standby") == 1
    assert sample(metrics, "rollout_autopilot_leader") == 0
    assert sample(metrics, "rollout_autopilot_plans", status="active") == 0
    assert sample(metrics, "rollout_autopilot_plans_paused_without_data") == 0
    assert sample(metrics, "rollout_autopilot_last_tick_timestamp_seconds") == later.timestamp()
    assert sample(metrics, "rollout_autopilot_last_leader_tick_timestamp_seconds") == AT.timestamp()

    metrics.tick_done(TickReport(later, False, ""))  # the lease could not be read
    assert sample(metrics, "rollout_autopilot_ticks_total", outcome="database_unavailable") == 1
    metrics.tick_done(TickReport(later, True, "a:1"), PlanCensus({"active": 3}, 0))
    metrics.tick_failed(2.0)
    assert sample(metrics, "rollout_autopilot_ticks_total", outcome="error") == 1
    assert sample(metrics, "rollout_autopilot_leader") == 0
    assert sample(metrics, "rollout_autopilot_tick_duration_seconds_count") == 5


def test_action_results() -> None:
    assert action_result(outcome(Move.WAIT)) is None
    assert action_result(outcome(Move.ADVANCE, applied=result(ExitCode.DONE))) == "applied"
    for refused in (ExitCode.REFUSED, ExitCode.CONFLICT, ExitCode.REQUESTED):
        assert action_result(outcome(Move.WAIT, attempted=result(refused))) == "refused"
    for failed in (ExitCode.UNAVAILABLE, ExitCode.USAGE):
        assert action_result(outcome(Move.WAIT, attempted=result(failed))) == "failed"


def test_deliveries_are_counted_by_webhook_and_outcome() -> None:
    metrics = AutopilotMetrics()
    metrics.know_webhooks(["oncall", "audit"])
    labels = {"webhook": "audit", "outcome": "failed"}
    assert sample(metrics, "rollout_autopilot_webhook_deliveries_total", **labels) == 0
    for webhook, said in (("oncall", "retrying"), ("oncall", "delivered"), ("audit", "failed")):
        metrics.delivery_settled(webhook, said)
    labels = {"webhook": "oncall", "outcome": "delivered"}
    assert sample(metrics, "rollout_autopilot_webhook_deliveries_total", **labels) == 1
    labels = {"webhook": "audit", "outcome": "failed"}
    assert sample(metrics, "rollout_autopilot_webhook_deliveries_total", **labels) == 1


def test_two_instances_never_share_a_registry() -> None:
    one, two = AutopilotMetrics(), AutopilotMetrics()
    one.tick_done(TickReport(AT, True, "a:1"))
    assert sample(two, "rollout_autopilot_ticks_total", outcome="leader") == 0


def test_the_metrics_are_served_and_a_taken_port_is_said() -> None:
    import socket
    import urllib.request

    import pytest

    from app.autopilot.telemetry import MetricsPortUnavailable

    metrics = AutopilotMetrics()
    metrics.tick_done(TickReport(AT, True, "a:1"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    metrics.serve(port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert 'rollout_autopilot_ticks_total{outcome="leader"} 1.0' in text
        assert "rollout_autopilot_leader 1.0" in text
        with pytest.raises(MetricsPortUnavailable, match=f"metrics port 127.0.0.1:{port}: "):
            AutopilotMetrics().serve(port, "127.0.0.1")
    finally:
        metrics.stop()
