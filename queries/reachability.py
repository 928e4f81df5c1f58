"""Whether a source answers at all, for the probes (`app.probes`): the metrics database
(one `SELECT 1`, no migration, a short connect timeout; an SQLite file's folder is made,
as `open_database` makes it) and the PromQL server (one instant query of a constant, as
the dashboard's own client sends it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from urllib3.exceptions import InsecureRequestWarning

from queries.source import SourceUnavailable

__all__ = ["check_database", "check_prometheus"]

_DETAIL_LIMIT = 160


def check_database(url: str, timeout_seconds: float) -> None:
    """Return when the database at `url` answers `SELECT 1` within about
    `timeout_seconds`; SourceUnavailable otherwise, whose detail never holds the URL or
    its password (the driver's first line, with them blanked out)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceUnavailable("metrics database", "not an SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # as `open_database` does: the file may not exist yet, its folder must
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=_timeout_arguments(backend, timeout_seconds))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        detail = _first_line(str(cause), secrets=(url, parsed.password))
        label = type(cause).__name__
        raise SourceUnavailable(
            "metrics database", f"{label}: {detail}" if detail else label
        ) from None
    finally:
        engine.dispose()


def _timeout_arguments(backend: str, timeout_seconds: float) -> dict[str, float | int]:
    if backend == "postgresql":
        return {"connect_timeout": max(1, round(timeout_seconds))}
    if backend == "sqlite":
        return {"timeout": timeout_seconds}
    return {}


def _first_line(message: str, secrets: tuple[str | None, ...]) -> str:
    """The message's first line, shortened, with every secret replaced by `***`."""
    line = message.strip().splitlines()[0].strip() if message.strip() else ""
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line[:_DETAIL_LIMIT]


def check_prometheus(url: str, timeout_seconds: float) -> None:
    """Return when `<url>/api/v1/query?query=vector(1)` answers `success` within
    `timeout_seconds`; SourceUnavailable otherwise, naming the failure (refused, timed
    out, HTTP status) but never the URL, which may carry credentials."""
    try:
        # TLS as the dashboard's own client (PrometheusConnect with disable_ssl=True), so
        # that the probe never disagrees with the pages; its warning would break the line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            reply = requests.get(
                f"{url.rstrip('/')}/api/v1/query",
                params={"query": "vector(1)"},
                timeout=timeout_seconds,
                verify=False,  # noqa: S501 - the same as the client that serves the pages
            )
    except requests.Timeout:
        raise SourceUnavailable("Prometheus", f"no answer within {timeout_seconds:g} s") from None
    except requests.ConnectionError:
        raise SourceUnavailable("Prometheus", "connection refused or host unknown") from None
    except requests.RequestException as error:
        raise SourceUnavailable("Prometheus", type(error).__name__) from None
    if reply.status_code != 200:
        raise SourceUnavailable("Prometheus", f"HTTP {reply.status_code}")
    try:
        status = reply.json().get("status")
    except ValueError:
        status = None
    if status != "success":
        raise SourceUnavailable("Prometheus", "the reply is not a PromQL API answer")
