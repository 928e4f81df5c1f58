"""Guarded actions on a real Unleash: receipts in the audit, read-only refusals, an
emergency rollback reported flag by flag, changes made in Unleash itself, Unleash down,
and the token in no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.audit import AuditLog, Outcome
from app.cli import main
from app.demo.unleash_server import start_unleash
from app.flags.model import FlagState
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest, FlagOutcome, FlagOutcomeStatus
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.unleash.api import UnleashApi
from app.unleash.backend import UnleashFlagBackend, dashboard_event_ids
from tests.conftest import fresh_postgres_database
from tests.support.identities import OPERATOR
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash

ENV = "production"


def passing(_snapshot: object, _flag: str) -> list[GuardResult]:
    return [GuardResult("data_fresh", True, 1.0, 120, "fresh")]


@pytest.fixture
def backend(unleash: UnleashSeed) -> UnleashFlagBackend:
    server = unleash.server
    return UnleashFlagBackend(UnleashApi(server.url, server.admin_token, 10))


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(
        open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), tmp_path / "journal.jsonl"
    )


def request(action: Action = Action.ADVANCE, flag: str | None = "checkout", **kwargs: object):
    values: dict[str, object] = {
        "environment": ENV,
        "reason": "steady for an hour",
        "identity": OPERATOR,
    }
    return ActionRequest(action=action, flag=flag, **(values | kwargs))  # type: ignore[arg-type]


def rollout_of(unleash: UnleashSeed, flag: str) -> str:
    (strategy,) = unleash.strategies(flag)
    return str(strategy["parameters"]["rollout"])


def test_an_advance_writes_the_rollout_and_its_audit_names_the_unleash_event(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    variants = [
        {"name": "blue", "weight": 500, "weightType": "variable", "stickiness": "default"},
        {"name": "green", "weight": 500, "weightType": "variable", "stickiness": "default"},
    ]
    unleash.create("checkout", rollout=5, variants=variants)

    result = execute_action(request(), backend, audit, passing)

    assert result.exit_code is ExitCode.DONE and result.applied
    assert rollout_of(unleash, "checkout") == "10"
    (strategy,) = unleash.strategies("checkout")
    assert [v["name"] for v in strategy["variants"]] == ["blue", "green"]  # no PUT wiped them
    (entry,) = result.audit
    event = unleash.events("checkout", limit=1)[0]
    assert event["type"] == "feature-strategy-update"
    assert entry.detail == f"Unleash event #{event['id']} by rollout-dashboard"
    assert audit.get(entry.id).detail == entry.detail  # stored, not just returned
    assert event["preData"]["parameters"]["rollout"] == "5"
    assert event["data"]["parameters"]["rollout"] == "10"


def test_a_kill_switches_the_environment_off(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    unleash.create("checkout", rollout=25)

    result = execute_action(request(Action.KILL), backend, audit, passing)

    assert result.applied
    assert backend.load(ENV).flag("checkout").state is FlagState.DISABLED
    types = [e["type"] for e in unleash.events("checkout", limit=2)]
    assert types == ["feature-environment-disabled", "feature-strategy-update"]
    assert "Unleash events #" in result.audit[0].detail


def test_an_action_on_a_read_only_flag_is_refused_with_the_reason(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    unleash.create("bare", enabled=False)
    unleash.create("wide", rollout="150")
    events = {name: len(unleash.events(name)) for name in ("bare", "wide")}

    bare = execute_action(request(flag="bare", to_percentage=25), backend, audit, passing)
    wide = execute_action(request(Action.ROLLBACK, flag="wide"), backend, audit, passing)

    assert bare.exit_code is ExitCode.REFUSED
    assert "bare is read-only in production" in (bare.error or "")
    assert "no flexibleRollout strategy" in (bare.error or "")
    assert wide.exit_code is ExitCode.REFUSED and '"150"' in (wide.error or "")
    assert unleash.strategies("bare") == []  # never switched on (Unleash would add 100 %)
    assert {name: len(unleash.events(name)) for name in ("bare", "wide")} == events
    assert audit.entries() == []


def test_an_emergency_rollback_reports_flag_by_flag(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    for name, rollout in (("alpha", 10), ("beta", 20), ("gamma", 30), ("delta", 40)):
        unleash.create(name, rollout=rollout)
    unleash.create(
        "narrow",
        rollout=50,
        constraints=[{"contextName": "userId", "operator": "IN", "values": ["1"]}],
    )
    unleash.create("done", rollout=100)  # enabled: left alone
    read = backend.load(ENV)
    unleash.set_rollout("beta", "15")  # changed in Unleash after the dashboard looked

    class ArchivedMeanwhile(UnleashFlagBackend):
        """Archives gamma in Unleash just before its write: no longer there to switch off."""

        archived = False

        def apply(self, environment, changes, expected_versions):  # type: ignore[no-untyped-def]
            if not self.archived and "gamma" in [change.flag for change in changes]:
                unleash.call("POST", "/api/admin/projects/default/archive", {"features": ["gamma"]})
                self.archived = True
            return super().apply(environment, changes, expected_versions)

    result = execute_action(
        request(Action.EMERGENCY, flag=None, expected_versions=read.versions),
        ArchivedMeanwhile(backend.api),
        audit,
        passing,
    )

    assert result.exit_code is ExitCode.UNAVAILABLE  # a failure outranks the conflict
    assert result.per_flag is not None
    said = result.per_flag
    assert said["alpha"] == said["delta"] == FlagOutcome(FlagOutcomeStatus.APPLIED)
    assert said["beta"].status is FlagOutcomeStatus.CONFLICTED
    assert said["beta"].detail.startswith("changed concurrently")
    assert said["gamma"].status is FlagOutcomeStatus.FAILED
    assert said["gamma"].detail.startswith("unknown flag 'gamma'")
    assert result.plan is not None and set(result.plan.skipped) == {"narrow"}
    assert "switched off: alpha, delta" in (result.error or "")
    assert "conflicted: beta" in (result.error or "")
    now = backend.load(ENV)
    assert now.flag("alpha").state is FlagState.DISABLED
    assert now.flag("delta").state is FlagState.DISABLED
    assert now.flag("beta").percentage == 15.0  # the newer change was not overwritten
    assert now.flag("narrow").state is FlagState.ROLLOUT
    assert now.flag("done").state is FlagState.ENABLED
    outcomes = {e.flag: (e.outcome, e.detail) for e in audit.entries()}
    assert outcomes["alpha"][0] is Outcome.APPLIED and "Unleash event" in outcomes["alpha"][1]
    assert outcomes["beta"][0] is Outcome.REFUSED and "changed concurrently" in outcomes["beta"][1]
    assert outcomes["gamma"][0] is Outcome.FAILED and "unknown flag" in outcomes["gamma"][1]
    assert set(outcomes) == {"alpha", "beta", "gamma", "delta"}


def test_a_change_made_in_unleash_is_seen_and_told_apart_from_the_dashboards(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    before = max(
        (e["id"] for e in unleash.call("GET", "/api/admin/search/events?limit=1")["events"]),
        default=0,
    )
    unleash.create("checkout", rollout=5)
    done = execute_action(request(), backend, audit, passing)
    assert done.applied

    unleash.set_rollout("checkout", "50")  # someone in Unleash's own UI

    assert backend.load(ENV).flag("checkout").percentage == 50.0
    ours = dashboard_event_ids(entry.detail for entry in audit.entries())
    changes = [c for c in backend.external_changes(ENV, ours=ours) if c.event_id > before]
    newest = changes[0]
    assert (newest.flag, newest.actor, newest.summary) == (
        "checkout",
        "rollout-dashboard",  # the seed writes with the same token name
        "rollout 10 % → 50 %",
    )
    assert newest.label == "changed in Unleash by rollout-dashboard: rollout 10 % → 50 %"
    assert not any(change.event_id in ours for change in changes)
    assert [c.summary for c in changes] == [
        "rollout 10 % → 50 %",
        "switched on",
        ("strategy flexibleRollout added"),
    ]
    # Without the audit's ids, this token's own events count as the dashboard's.
    assert backend.external_changes(ENV) == []


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_environment(tmp_path: Path, url: str, token: str) -> dict[str, str]:
    import os

    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ROLLOUT_STATE_DIR": str(tmp_path / "state"),
        "ROLLOUT_FLAG_BACKEND": "unleash",
        "ROLLOUT_UNLEASH_URL": url,
        "ROLLOUT_UNLEASH_TOKEN": token,
        "ROLLOUT_UNLEASH_TIMEOUT_SECONDS": "3",
        "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",
        "ROLLOUT_ROLES": '{"olga": "operator", "ada": "admin"}',
    }


def test_unleash_stopped_is_exit_4_audited_and_the_token_never_shows(tmp_path: Path) -> None:
    """A second, short-lived Unleash, stopped before the CLI acts (the session's one keeps
    running for the other tests)."""
    with fresh_postgres_database("unleash_down") as url:
        server = start_unleash(
            url.replace("postgresql+psycopg://", "postgres://"), tmp_path / "u.log"
        )
        server.stop()
    env = cli_environment(tmp_path, server.url, server.admin_token)

    kill = ("rollback", "checkout", "--kill", "--reason", "paging", "--actor", "olga")
    killed = _cli(env, *kill, "--idempotency-key", "page-42")
    again = _cli(env, *kill, "--idempotency-key", "page-42")  # a retry of the same key
    audited = _cli(env, "audit", "--json")

    assert killed.returncode == ExitCode.UNAVAILABLE, killed.stderr
    assert "Unleash unavailable" in killed.stderr
    assert "Traceback" not in killed.stderr
    assert again.returncode == ExitCode.REFUSED and "already recorded as failed" in again.stderr
    assert "Traceback" not in again.stderr
    (record,) = json.loads(audited.stdout)["records"]
    assert (record["flag"], record["action"], record["outcome"]) == ("checkout", "kill", "failed")
    assert "Unleash unavailable" in record["detail"]
    secret = server.admin_token.split(".", 1)[1]
    for output in (killed.stdout, killed.stderr, audited.stdout, audited.stderr):
        assert secret not in output
    journal = tmp_path / "state"
    for path in journal.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()


def test_the_unleash_backend_without_url_or_token_is_a_settings_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment: None, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_FLAG_BACKEND", "unleash")

    code = main(["status"])

    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "ROLLOUT_UNLEASH_URL" in err and "ROLLOUT_UNLEASH_TOKEN" in err
    assert "Traceback" not in err


def test_the_cli_acts_on_unleash_and_the_token_is_in_no_output_or_file(
    unleash: UnleashSeed, tmp_path: Path
) -> None:
    server = unleash.server
    for name, rollout in (("alpha", 10), ("beta", 20)):
        unleash.create(name, rollout=rollout)
    unleash.create("bare", enabled=False)
    env = cli_environment(tmp_path, server.url, server.admin_token)
    assert _cli(env, "db", "upgrade").returncode == 0  # `status` only reads: never migrates

    status = _cli(env, "status", "--json")
    refused = _cli(env, "rollback", "bare", "--kill", "--reason", "paging", "--actor", "olga")
    emergency = _cli(env, "rollback", "--all-experimental", "--reason", "paging", "--actor", "olga")
    audited = _cli(env, "audit", "--json")

    flags = {f["flag"]: f for f in json.loads(status.stdout)["flags"]}
    assert (flags["alpha"]["state"], flags["alpha"]["percentage"]) == ("rollout", 10.0)
    assert refused.returncode == ExitCode.REFUSED
    assert "bare is read-only in production" in refused.stderr
    assert emergency.returncode == ExitCode.DONE, emergency.stderr
    assert "alpha: rollout 10 % → disabled 0 %" in emergency.stdout
    assert "beta: rollout 20 % → disabled 0 %" in emergency.stdout
    records = json.loads(audited.stdout)["records"]
    assert sorted((r["flag"], r["outcome"]) for r in records) == [
        ("alpha", "applied"),
        ("beta", "applied"),
    ]
    assert all(r["detail"].startswith("Unleash event") for r in records)
    secret = server.admin_token.split(".", 1)[1]
    for done in (status, refused, emergency, audited):
        assert secret not in done.stdout and secret not in done.stderr
        assert "Traceback" not in done.stderr
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()


def test_a_percentage_unleash_cannot_hold_exactly_is_refused_before_any_write(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog
) -> None:
    unleash.create("checkout", rollout=5)
    events = len(unleash.events("checkout"))

    result = execute_action(request(to_percentage=12.5), backend, audit, passing)

    assert result.exit_code is ExitCode.REFUSED
    assert "percentage must be a whole number within 0..100, got 12.5" in (result.error or "")
    assert rollout_of(unleash, "checkout") == "5"
    assert len(unleash.events("checkout")) == events
    (entry,) = audit.entries()
    assert entry.outcome is Outcome.FAILED and "whole number" in entry.detail


def test_an_advance_to_100_reads_back_as_enabled_and_counts_as_applied(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog, tmp_path: Path
) -> None:
    from app.runtime import Runtime
    from app.settings import Settings

    unleash.create("checkout", rollout=50)

    result = execute_action(request(), backend, audit, passing)

    assert result.applied and rollout_of(unleash, "checkout") == "100"
    assert backend.load(ENV).flag("checkout").state is FlagState.ENABLED
    runtime = Runtime(Settings(state_dir=tmp_path), None, backend, audit, [])
    assert runtime.is_applied(result.audit[0])  # a crash-left pending record settles


def test_a_write_unleash_cannot_read_back_stays_pending_until_reconciled(
    unleash: UnleashSeed, backend: UnleashFlagBackend, audit: AuditLog, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.runtime import Runtime
    from app.settings import Settings
    from app.unleash.api import UnleashUnavailable

    class GoneAfterTheWrite(UnleashFlagBackend):
        """Unleash stops answering right after the patch: the write landed, its read-back
        times out (injected at that instant; the server itself keeps running)."""

        wrote = False

        def _write(self, environment, flag, change, expected):  # type: ignore[no-untyped-def]
            super()._write(environment, flag, change, expected)
            self.wrote = True

        def _read(self, environment):  # type: ignore[no-untyped-def]
            if self.wrote:
                raise UnleashUnavailable("POST /api/admin/features-batch/export timed out")
            return super()._read(environment)

    unleash.create("checkout", rollout=5)

    result = execute_action(request(), GoneAfterTheWrite(backend.api), audit, passing)

    assert result.exit_code is ExitCode.UNAVAILABLE and not result.applied
    assert "written but not read back" in (result.error or "")
    (entry,) = audit.entries()
    assert entry.outcome is Outcome.PENDING  # neither applied nor failed: nobody knows yet
    assert rollout_of(unleash, "checkout") == "10"
    runtime = Runtime(Settings(state_dir=tmp_path), None, backend, audit, [])
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert audit.reconcile_pending(runtime.is_applied, now=later) == 1
    assert audit.entries()[0].outcome is Outcome.APPLIED
