"""The demo's simulated users evaluating through the real Unleash SDK."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from app.demo.simulator import Workload
from app.demo.unleash_workload import connect
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash


def test_the_workload_serves_on_to_the_rollout_share_the_sdk_fetched(unleash: UnleashSeed) -> None:
    unleash.create("checkout_v2", rollout=30)
    unleash.create("dark_mode", rollout=100, enabled=False)
    server = unleash.server
    evaluators = connect(server.api_url, {"production": server.sdk_tokens["production"]})
    try:
        workload = Workload(None, CollectorRegistry(), evaluators=evaluators)
        assert sorted(evaluators["production"].config.flags) == ["checkout_v2", "dark_mode"]
        now = datetime.now(UTC)
        for _ in range(20):
            workload.tick(60.0, now, export=False)
        counts: dict[tuple[str, str], int] = {}
        for rollup in workload.rollups.drain(now, 1200.0):
            key = (rollup.flag, rollup.variant)
            counts[key] = counts.get(key, 0) + rollup.evaluations
    finally:
        for evaluator in evaluators.values():
            evaluator.client.destroy()

    on, off = counts[("checkout_v2", "on")], counts[("checkout_v2", "off")]
    assert on + off > 2_000
    assert on / (on + off) == pytest.approx(0.30, abs=0.04)
    # A disabled environment serves nobody, whatever its strategy's rollout.
    assert ("dark_mode", "on") not in counts
    assert counts[("dark_mode", "off")] > 0


def test_with_the_dashboards_backend_instances_report_the_version_it_shows(
    unleash: UnleashSeed,
) -> None:
    from app.unleash.api import UnleashApi
    from app.unleash.backend import UnleashFlagBackend

    unleash.create("checkout_v2", rollout=30)
    server = unleash.server
    backend = UnleashFlagBackend(UnleashApi(server.url, server.admin_token))
    evaluators = connect(server.api_url, {"production": server.sdk_tokens["production"]}, backend)
    try:
        shown = backend.load("production").config
        production = evaluators["production"]
        assert production.config == shown
        assert production.config.loaded_version == shown.loaded_version
        flag = shown.flags["checkout_v2"]
        served = {
            production.evaluate(flag, _context(str(user)), datetime.now(UTC)).variant
            for user in range(200)
        }
        assert served == {flag.rollout.variant, flag.default_variant}
    finally:
        for evaluator in evaluators.values():
            evaluator.client.destroy()


def _context(user: str):  # type: ignore[no-untyped-def]
    from app.flags.evaluator import EvaluationContext

    return EvaluationContext(user_id=user, user_type="member", environment="production")
