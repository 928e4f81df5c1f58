"""The checks behind `rollout-dashboard healthcheck`: the image's HEALTHCHECK and the
Kubernetes liveness and readiness probes.

Alive: the metrics database answers and the flag backend reads the configured
environment. Ready: alive, and the metrics source (Prometheus, when one is configured)
answers a query. Nothing is migrated or written; every problem is a short line that
never holds a URL, a password or a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from app.errors import RolloutError

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["Dependency", "HealthReport", "ProbeResult", "check_health"]

#: the seconds each dependency gets to answer (a probe's own timeout should exceed their sum)
DEFAULT_TIMEOUT_SECONDS = 3.0
_DETAIL_LIMIT = 200


class Dependency(StrEnum):
    DATABASE = "metrics database"
    FLAG_BACKEND = "flag backend"
    METRICS_SOURCE = "metrics source"


@dataclass(frozen=True)
class ProbeResult:
    """One dependency's answer: `problem` is None when it answered."""

    dependency: Dependency
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class HealthReport:
    results: tuple[ProbeResult, ...]

    @property
    def healthy(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def reason(self) -> str:
        """One line: every failure (`metrics database unavailable: …`), or what answered."""
        failed = [r for r in self.results if not r.ok]
        if failed:
            return "; ".join(f"{r.dependency} unavailable: {r.problem}" for r in failed)
        return "ok: " + ", ".join(str(r.dependency) for r in self.results) + " answered"


def check_health(
    settings: Settings, *, ready: bool = False, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> HealthReport:
    """Probe the database and the flag backend, and with `ready` the metrics source."""
    from queries.reachability import check_database

    database = _probe(
        Dependency.DATABASE, lambda: check_database(settings.resolved_database_url, timeout_seconds)
    )
    results = [database, _flag_backend(settings, database.ok, timeout_seconds)]
    if ready:
        results.append(_metrics_source(settings, timeout_seconds))
    return HealthReport(tuple(results))


def _flag_backend(settings: Settings, database_ok: bool, timeout_seconds: float) -> ProbeResult:
    """Read the configured environment's flags through the configured backend."""
    from app.settings import FlagBackendKind

    kind = settings.flag_backend
    if kind is FlagBackendKind.SQL and not database_ok:
        return ProbeResult(Dependency.FLAG_BACKEND, "the sql backend needs the metrics database")

    def read() -> None:
        if kind is FlagBackendKind.YAML:
            from app.flags.yaml_backend import YamlFlagBackend

            YamlFlagBackend(settings.resolved_flags_file).load(settings.environment)
        elif kind is FlagBackendKind.SQL:
            from app.flags.sql_backend import SqlFlagBackend
            from app.metrics_db.database import open_database

            engine = open_database(settings.resolved_database_url, migrate_schema=False)
            try:
                SqlFlagBackend(engine).load(settings.environment)
            finally:
                engine.dispose()
        else:
            from app.runtime import open_unleash_backend

            open_unleash_backend(settings).environments()

    return _probe(Dependency.FLAG_BACKEND, read)


def _metrics_source(settings: Settings, timeout_seconds: float) -> ProbeResult:
    """Prometheus when configured; without it the metrics come from the database."""
    if settings.prometheus_url is None:
        return ProbeResult(Dependency.METRICS_SOURCE)
    from queries.reachability import check_prometheus

    url = settings.prometheus_url.get_secret_value()
    return _probe(Dependency.METRICS_SOURCE, lambda: check_prometheus(url, timeout_seconds))


def _probe(dependency: Dependency, check: Callable[[], None]) -> ProbeResult:
    """Run `check`; a known failure becomes the result's problem (its safe message)."""
    from sqlalchemy.exc import SQLAlchemyError

    from queries.source import SourceUnavailable

    try:
        check()
    except SourceUnavailable as error:  # its message is safe to show, by contract
        named = error.detail if error.source == dependency else f"{error.source}: {error.detail}"
        return ProbeResult(dependency, named[:_DETAIL_LIMIT])
    except RolloutError as error:  # an invalid flag file names the file and the line
        return ProbeResult(dependency, _first_line(str(error)))
    except SQLAlchemyError as error:  # the driver's text may quote the URL: the type only
        return ProbeResult(dependency, type(error).__name__)
    except OSError as error:
        return ProbeResult(dependency, f"{type(error).__name__}: {error.strerror or error}")
    except Exception as error:  # a probe answers in one line, whatever broke
        return ProbeResult(dependency, f"unexpected {type(error).__name__}")
    return ProbeResult(dependency)


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return (lines[0] if lines else "")[:_DETAIL_LIMIT]
