"""End to end on a real Unleash: a dashboard advance reaches the real Python SDK
(UnleashClient 6.9.1) with Unleash's stickiness, and two processes advancing one flag at
once give one applied change, one conflict and no lost update in Unleash's event log."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from UnleashClient import UnleashClient

from app.audit import AuditLog, Outcome
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest
from app.rollout.execution import execute_action
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardResult
from app.rollout.planning import plan_action
from app.rollout.roles import Identity, Role
from app.unleash.api import UnleashApi
from app.unleash.backend import UnleashFlagBackend, file_lock
from tests.support.identities import OPERATOR
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash

ENV = "production"
USERS = [str(user) for user in range(10_000)]


def passing(_snapshot: object, _flag: str) -> list[GuardResult]:
    return [GuardResult("data_fresh", True, 1.0, 120, "fresh")]


def enabled_users(client: UnleashClient, flag: str, users: list[str] = USERS) -> set[str]:
    return {user for user in users if client.is_enabled(flag, {"userId": user})}


def test_an_advance_from_5_to_25_reaches_the_sdk_and_keeps_every_user_on(
    unleash: UnleashSeed, tmp_path: Path
) -> None:
    server = unleash.server
    unleash.create("checkout", rollout=5)
    backend = UnleashFlagBackend(UnleashApi(server.url, server.admin_token, 10))
    audit = AuditLog(
        open_database(f"sqlite:///{tmp_path / 'metrics.db'}"), tmp_path / "journal.jsonl"
    )
    client = UnleashClient(
        url=server.api_url,
        app_name="rollout-e2e",
        instance_id="e2e-1",
        custom_headers={"Authorization": server.sdk_tokens[ENV]},
        refresh_interval=1,
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(tmp_path / "sdk-cache"),
    )
    client.initialize_client()
    try:
        at_5 = enabled_users(client, "checkout")
        assert abs(len(at_5) / len(USERS) - 0.05) <= 0.015

        result = execute_action(
            ActionRequest(
                Action.ADVANCE, ENV, "steady for an hour", OPERATOR, "checkout", to_percentage=25
            ),
            backend,
            audit,
            passing,
        )
        returned = time.monotonic()
        assert result.applied, result.error
        sample = USERS[:2000]
        deadline = returned + 30
        while len(enabled_users(client, "checkout", sample)) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)  # 25 % of 2,000 is about 500; 5 % about 100
        seen_after = time.monotonic() - returned

        at_25 = enabled_users(client, "checkout")
    finally:
        client.destroy()
    print(f"\nSDK saw the advance {seen_after:.2f} s after the action returned")
    assert abs(len(at_25) / len(USERS) - 0.25) <= 0.015
    assert at_5 <= at_25  # sticky: nobody who had it lost it
    print(f"on at 5 %: {len(at_5)}, at 25 %: {len(at_25)}, lost: {len(at_5 - at_25)}")


def _advance_in_a_process(
    url: str, token: str, lock: str, database: str, flag: str, actor: str, barrier: Any
) -> tuple[int, str | None]:
    """One dashboard process: read and decide, wait for the other, then act on what it
    confirmed (as the action dialog does)."""
    backend = UnleashFlagBackend(
        UnleashApi(url, token, 10), write_lock=lambda: file_lock(Path(lock))
    )
    audit = AuditLog(open_database(database), Path(lock).with_suffix(f".{actor}.jsonl"))
    identity = Identity(actor, Role.OPERATOR, "test")
    request = ActionRequest(Action.ADVANCE, ENV, "race", identity, flag, to_percentage=25)
    plan = plan_action(request, backend, passing)
    barrier.wait(timeout=60)
    confirmed = ActionRequest(
        Action.ADVANCE,
        ENV,
        "race",
        identity,
        flag,
        to_percentage=25,
        expected_versions=plan.snapshot.versions,
        confirmed=plan.transitions,
    )
    result = execute_action(confirmed, backend, audit, passing)
    return int(result.exit_code), result.error


def test_two_processes_advancing_one_flag_give_one_change_one_conflict_no_lost_update(
    unleash: UnleashSeed, tmp_path: Path
) -> None:
    server = unleash.server
    database = f"sqlite:///{tmp_path / 'metrics.db'}"
    open_database(database).dispose()  # migrated once, before the processes race
    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        flag = f"race_{round_}"
        unleash.create(flag, rollout=5)
        barrier = context.Manager().Barrier(2)
        with context.Pool(2) as pool:
            results = pool.starmap(
                _advance_in_a_process,
                [
                    (
                        server.url,
                        server.admin_token,
                        str(tmp_path / ".unleash-writes.lock"),
                        database,
                        flag,
                        actor,
                        barrier,
                    )
                    for actor in ("olga", "omar")
                ],
            )

        codes = sorted(code for code, _ in results)
        assert codes == [ExitCode.DONE, ExitCode.CONFLICT], results
        updates = [
            event
            for event in reversed(unleash.events(flag))
            if event["type"] in ("feature-strategy-add", "feature-strategy-update")
        ]
        assert [e["type"] for e in updates] == ["feature-strategy-add", "feature-strategy-update"]
        for previous, event in itertools.pairwise(updates):
            assert event["preData"]["parameters"] == previous["data"]["parameters"]
        assert updates[-1]["data"]["parameters"]["rollout"] == "25"
        audit = AuditLog(open_database(database), tmp_path / "reader.jsonl")
        outcomes = sorted(str(e.outcome) for e in audit.entries(flag))
        assert outcomes == [Outcome.APPLIED, Outcome.REFUSED]  # the conflict: refused
