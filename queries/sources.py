"""The metrics sources one process can ask, in the order to ask them: Prometheus first
when configured, then the database roll-ups.

Each question set (overview and guards, canary, flag series) is built here from the
same two backends, so no page or service assembles its own list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from queries.canary import CanaryQueries, PrometheusCanaryQueries, SqlCanaryQueries
from queries.flag_series import FlagSeriesQueries, PrometheusFlagSeries, SqlFlagSeries
from queries.prometheus import PrometheusMetrics
from queries.source import MetricsSource
from queries.sql import SqlMetrics

__all__ = ["Sources"]


@dataclass(frozen=True)
class Sources:
    """The configured backends; each method lists one question set, Prometheus first.
    A backend that is None (not configured, or the database did not open) is left out."""

    prometheus: PrometheusMetrics | None = None
    engine: Engine | None = None

    def metrics(self) -> list[MetricsSource]:
        """The instant questions (overview, guards, CLI status)."""
        found: list[MetricsSource] = []
        if self.prometheus is not None:
            found.append(self.prometheus)
        if self.engine is not None:
            found.append(SqlMetrics(self.engine))
        return found

    def canary(self) -> list[CanaryQueries]:
        """The canary questions."""
        found: list[CanaryQueries] = []
        if self.prometheus is not None:
            found.append(PrometheusCanaryQueries(self.prometheus))
        if self.engine is not None:
            found.append(SqlCanaryQueries(self.engine))
        return found

    def flag_series(self) -> list[tuple[FlagSeriesQueries, MetricsSource]]:
        """Per backend, the flag detail's range questions with its instant questions."""
        found: list[tuple[FlagSeriesQueries, MetricsSource]] = []
        if self.prometheus is not None:
            found.append((PrometheusFlagSeries(self.prometheus), self.prometheus))
        if self.engine is not None:
            found.append((SqlFlagSeries(self.engine), SqlMetrics(self.engine)))
        return found
