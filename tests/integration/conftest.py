"""Real servers for the integration tests, filled with data whose numbers are known."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support.prometheus import (
    BackfilledPrometheus,
    openmetrics_from_rollups,
    start_prometheus,
)
from tests.support.victoriametrics import start_victoriametrics
from tests.support.workload import reference_rollups

#: The reference workload ends here; queries are pinned to it (an instant query at "now"
#: would find nothing once the newest sample is over 5 minutes old).
REFERENCE_END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def backfilled_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackfilledPrometheus]:
    """A Prometheus holding one hour of `reference_rollups` ending at `REFERENCE_END`."""
    text = openmetrics_from_rollups(reference_rollups(REFERENCE_END, hours=1.0))
    server = start_prometheus(text, tmp_path_factory.mktemp("prometheus"))
    try:
        yield BackfilledPrometheus(url=server.url, at=REFERENCE_END)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def backfilled_victoriametrics(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackfilledPrometheus]:
    """A VictoriaMetrics holding the same hour of `reference_rollups` as Prometheus."""
    rollups = reference_rollups(REFERENCE_END, hours=1.0)
    server = start_victoriametrics(rollups, tmp_path_factory.mktemp("victoriametrics"))
    try:
        yield BackfilledPrometheus(url=server.url, at=REFERENCE_END)
    finally:
        server.stop()
