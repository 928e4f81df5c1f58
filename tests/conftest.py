"""Fixtures shared by every test layer: real databases, created and dropped per session."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

#: the session's one Chromium, for tests/browser and the hostile bookmarks in tests/security;
#: the session's OpenID Connect provider and the sign-in helpers; the session's Unleash server;
#: the session's OpenFeature services (JS SDK) and the Prometheus scraping them
pytest_plugins = [
    "tests.support.chromium",
    "tests.support.oidc",
    "tests.support.unleash",
    "tests.support.openfeature",
]

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def fresh_postgres_database(prefix: str = "rollout_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on the machine's server, dropped afterwards.

    Fails (never skips) when PostgreSQL is not running: on CI these tests must run.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({error}); start it first")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One fresh PostgreSQL database for the whole session (see fresh_postgres_database)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def no_rollout_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what the test sets: no ROLLOUT_* leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith("ROLLOUT_"):
            monkeypatch.delenv(name)


REAL_COMPONENT_MARKERS = (
    "prometheus",
    "victoriametrics",
    "postgres",
    "browser",
    "oidc",
    "unleash",
    "podman",
)
_skipped_real: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-real-components",
        action="store_true",
        help="fail the run if a real-component test was skipped (on by CI=true)",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    expected_failure = hasattr(report, "wasxfail")  # xfail reports as skipped; it ran
    if (
        report.skipped
        and not expected_failure
        and any(m in report.keywords for m in REAL_COMPONENT_MARKERS)
    ):
        _skipped_real.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Real-component tests never skip silently: with the option (or on CI) a skip fails."""
    required = session.config.getoption("--require-real-components")
    if (required or os.environ.get("CI") == "true") and _skipped_real:
        print(
            f"\n{len(_skipped_real)} real-component test(s) skipped; they must run:",
            file=sys.stderr,
        )
        for nodeid in _skipped_real:
            print(f"  {nodeid}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
