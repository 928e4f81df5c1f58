"""The autopilot's own metrics, for Prometheus: what each tick did, whether this process
leads, the plans by status and what became of the webhook deliveries.

The runner hands every `TickReport` to `AutopilotMetrics.tick_done` (and every tick that
raised to `tick_failed`); the notifier tells `delivery_settled` about every attempt.
`serve()` exposes them on a port (`ROLLOUT_AUTOPILOT_METRICS_PORT`). Each instance has
its own registry, so several controllers in one process (tests, the demo) never clash.
The alert rules reading these names are `deploy/prometheus/autopilot.rules.yml`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from app.autopilot.model import PlanStatus
from app.errors import RolloutError
from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from app.autopilot.controller import PlanOutcome, TickReport
    from app.autopilot.store import PlanCensus

__all__ = ["AutopilotMetrics", "MetricsPortUnavailable", "TickOutcome", "action_result"]

PREFIX = "rollout_autopilot"
#: a tick takes milliseconds with few plans, seconds with thousands or a slow source
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class MetricsPortUnavailable(RolloutError, OSError):
    """The metrics port cannot be bound (taken, or a privileged port)."""


class TickOutcome:
    """The values of `rollout_autopilot_ticks_total{outcome}`."""

    LEADER = "leader"  # this process held the lease and acted on the plans
    STANDBY = "standby"  # another process leads
    DATABASE_UNAVAILABLE = "database_unavailable"  # the lease could not be read
    ERROR = "error"  # the tick raised

    ALL = (LEADER, STANDBY, DATABASE_UNAVAILABLE, ERROR)


#: the values of `rollout_autopilot_actions_total{result}`
ACTION_RESULTS = ("applied", "refused", "failed")
#: the webhook delivery outcomes counted (`app.notify.DeliveryStatus` plus `dropped`)
DELIVERY_OUTCOMES = ("delivered", "retrying", "failed", "dropped")
_REFUSALS = frozenset({ExitCode.REFUSED, ExitCode.CONFLICT, ExitCode.REQUESTED})


def action_result(outcome: PlanOutcome) -> str | None:
    """'applied', 'refused' (a guard, a role or a concurrent change said no) or 'failed'
    (the write did not happen) for a plan the tick acted on; None when it tried nothing."""
    if outcome.applied is not None and outcome.applied.applied:
        return "applied"
    tried = outcome.attempted or outcome.applied
    if tried is None:
        return None
    return "refused" if tried.exit_code in _REFUSALS else "failed"


class AutopilotMetrics:
    """The counters and gauges of one autopilot process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.ticks = Counter(
            f"{PREFIX}_ticks", "Ticks run by this process, by outcome.", ["outcome"], registry=r
        )
        self.tick_duration = Histogram(
            f"{PREFIX}_tick_duration_seconds",
            "Time one tick took, every outcome.",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions", "Decisions about plans, by move.", ["move"], registry=r
        )
        self.actions = Counter(
            f"{PREFIX}_actions",
            "Flag changes the autopilot tried, by action and result (applied, refused, failed).",
            ["action", "result"],
            registry=r,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 while this process holds the lease, else 0.", registry=r
        )
        self.last_tick = Gauge(
            f"{PREFIX}_last_tick_timestamp_seconds",
            "When this process last finished a tick (Unix time), whatever its outcome.",
            registry=r,
        )
        self.last_leader_tick = Gauge(
            f"{PREFIX}_last_leader_tick_timestamp_seconds",
            "When this process last finished a tick as leader (Unix time).",
            registry=r,
        )
        self.plans = Gauge(
            f"{PREFIX}_plans",
            "Rollout plans by status, as the leader last counted them (0 on a standby).",
            ["status"],
            registry=r,
        )
        self.paused_without_data = Gauge(
            f"{PREFIX}_plans_paused_without_data",
            "Plans the autopilot paused after ticks without data (leader only).",
            registry=r,
        )
        self.deliveries = Counter(
            f"{PREFIX}_webhook_deliveries",
            "Webhook delivery attempts by webhook and outcome (delivered, retrying, failed, "
            "dropped).",
            ["webhook", "outcome"],
            registry=r,
        )
        for outcome in TickOutcome.ALL:  # every series exists from the start: rules see 0
            self.ticks.labels(outcome)
        for status in PlanStatus:
            self.plans.labels(str(status))
        self.leader.set(0)
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None

    def tick_done(self, report: TickReport, census: PlanCensus | None = None) -> None:
        """Count one finished tick: its outcome, time, every decision and action; with
        `census` (read by the leader), the plans by status."""
        if report.leader:
            outcome = TickOutcome.LEADER
        elif report.holder:
            outcome = TickOutcome.STANDBY
        else:
            outcome = TickOutcome.DATABASE_UNAVAILABLE
        self.ticks.labels(outcome).inc()
        self.tick_duration.observe(report.seconds)
        self.leader.set(1 if report.leader else 0)
        at = report.at.timestamp()
        self.last_tick.set(at)
        if report.leader:
            self.last_leader_tick.set(at)
        for plan in report.outcomes:
            self.decisions.labels(str(plan.decision.move)).inc()
            result = action_result(plan)
            if result is not None:
                self.actions.labels(_action_of(plan), result).inc()
        if census is not None:
            for status, count in census.by_status.items():
                self.plans.labels(status).set(count)
            self.paused_without_data.set(census.paused_without_data)
        elif not report.leader:  # the leader's count is the one to read
            for status in PlanStatus:
                self.plans.labels(str(status)).set(0)
            self.paused_without_data.set(0)

    def tick_failed(self, seconds: float) -> None:
        """A tick that raised: counted, and this process no longer claims to lead."""
        self.ticks.labels(TickOutcome.ERROR).inc()
        self.tick_duration.observe(seconds)
        self.leader.set(0)

    def know_webhooks(self, names: Iterable[str]) -> None:
        """Make every delivery series of these webhooks exist at 0, so that a rule's
        `increase()` sees the first failure too."""
        for name in names:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(name, outcome)

    def delivery_settled(self, webhook: str, outcome: str) -> None:
        """One webhook delivery attempt's outcome (`DELIVERY_OUTCOMES`)."""
        self.deliveries.labels(webhook, outcome).inc()

    def serve(self, port: int, address: str) -> None:
        """Expose the metrics on http://address:port/metrics from a daemon thread;
        MetricsPortUnavailable when the port cannot be bound."""
        with self._lock:
            if self._server is None:
                try:
                    self._server, _ = start_http_server(port, address, registry=self.registry)
                except OSError as error:
                    raise MetricsPortUnavailable(
                        f"metrics port {address}:{port}: {error.strerror or error}"
                    ) from None

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None


def _action_of(outcome: PlanOutcome) -> str:
    """The action (advance, rollback, kill) a plan's tick tried, as its request named it;
    'unknown' when the attempt failed before a plan of it was made."""
    tried = outcome.applied or outcome.attempted
    if tried is not None and tried.plan is not None:
        return str(tried.plan.request.action)
    return "unknown"
