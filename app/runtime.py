"""What one dashboard or CLI process holds: settings, the database engine, the sources.

Opening never fails because a source is down: an unreachable database or Prometheus is
reported in `notices` and the rest keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.analysis.health import HealthThresholds
from app.analysis.progress import PhaseProgress, phase_progress
from app.flags.loader import environments, load_config
from app.flags.model import FlagConfig
from app.metrics_db.database import open_database
from app.overview import Overview, load_overview
from app.settings import Settings
from queries.audit import LAST_CHANGE_COLUMNS, last_changes
from queries.frames import empty_frame
from queries.prometheus import PrometheusMetrics
from queries.source import MetricsSource, SourceUnavailable
from queries.sql import SqlMetrics

__all__ = ["Runtime", "open_runtime"]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine | None
    prometheus: PrometheusMetrics | None
    notices: list[str] = field(default_factory=list)

    @property
    def thresholds(self) -> HealthThresholds:
        s = self.settings
        return HealthThresholds(
            s.error_rate_degraded,
            s.error_rate_unhealthy,
            s.p99_degraded_seconds,
            s.p99_unhealthy_seconds,
        )

    def sources(self) -> list[MetricsSource]:
        """Prometheus first when configured, then the database roll-ups."""
        found: list[MetricsSource] = []
        if self.prometheus is not None:
            found.append(self.prometheus)
        if self.engine is not None:
            found.append(SqlMetrics(self.engine))
        return found

    def environments(self) -> list[str]:
        """Configured environments, the settings' environment first."""
        names = environments(self.settings.resolved_flags_file)
        first = self.settings.environment
        return [first, *(n for n in names if n != first)]

    def config(self, environment: str) -> FlagConfig:
        """The base config merged with `environment`'s overrides; ConfigInvalid if bad."""
        return load_config(self.settings.resolved_flags_file, environment)

    def phases(self, environment: str) -> list[PhaseProgress]:
        return phase_progress(self.config(environment))

    def overview(self, environment: str, at: datetime | None = None) -> Overview:
        """Every flag of `environment` with its numbers, from the first source that answers."""
        at = at or datetime.now(UTC)
        notices = list(self.notices)
        changes = empty_frame(LAST_CHANGE_COLUMNS)
        if self.engine is not None:
            try:
                changes = last_changes(self.engine, environment)
            except SourceUnavailable as error:
                notices.append(f"{error}: last changes are not shown.")
        s = self.settings
        return load_overview(
            self.config(environment),
            environment,
            self.sources(),
            changes,
            self.thresholds,
            s.rate_window,
            timedelta(minutes=s.sparkline_minutes),
            at,
            timedelta(hours=s.recent_change_hours),
            notices,
        )


def open_runtime(settings: Settings) -> Runtime:
    """Open the database (migrating it) and the Prometheus client named by `settings`."""
    notices: list[str] = []
    engine: Engine | None = None
    try:
        engine = open_database(settings.resolved_database_url)
    except SQLAlchemyError as error:
        notices.append(f"metrics database unavailable: {type(error).__name__}")
    prometheus = None
    if settings.prometheus_url is not None:
        prometheus = PrometheusMetrics(
            settings.prometheus_url.get_secret_value(),
            settings.metric_names,
            settings.prometheus_timeout_seconds,
            settings.prometheus_retries,
        )
    return Runtime(settings, engine, prometheus, notices)
