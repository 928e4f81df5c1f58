"""The unleash flag backend against a real local Unleash (8.2.0 over PostgreSQL): action
latency, time from an action to the Python SDK seeing it, and listing many features.

Run: `uv run python -m tests.bench.bench_unleash [--features N] [--actions N]
[--sdk-runs N] [--emergency-flags N]`. Starts its own Unleash on a fresh PostgreSQL
database (127.0.0.1:5432) and drops it afterwards. Prints figures; asserts nothing.

- action latency: `execute_action` (plan, audit pending, compare-and-set write, read
  back, event lookup, audit outcome) alternating advance 5 → 25 and rollback 25 → 5 on
  one flag, audit in SQLite, guards passing; first in a project of one feature, then of
  `--features` features (every read is an export of the whole project).
- action → SDK: a real UnleashClient (refresh_interval 1 s) polled every 20 ms until it
  serves the new percentage, from the moment `execute_action` returned.
- emergency rollback of `--emergency-flags` flags in rollout (each flag its own
  compare-and-set, read back and receipt), in a small project.
- listing: `UnleashFlagBackend.load` of the project (one export call) and mapping.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from UnleashClient import UnleashClient

from app.audit import AuditLog
from app.demo.unleash_server import LocalUnleash, start_unleash
from app.metrics_db.database import open_database
from app.rollout.action_model import Action, ActionRequest, FlagOutcome, FlagOutcomeStatus
from app.rollout.execution import execute_action
from app.rollout.guards import GuardResult
from app.rollout.roles import Identity, Role
from app.unleash.api import UnleashApi
from app.unleash.backend import UnleashFlagBackend

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
OPERATOR = Identity("bench", Role.OPERATOR, "bench")
ENV = "production"
APPLIED = FlagOutcome(FlagOutcomeStatus.APPLIED)


def passing(_snapshot: object, _flag: str) -> list[GuardResult]:
    return [GuardResult("data_fresh", True, 1.0, 120, "benchmark")]


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"median {1000 * statistics.median(ordered):.1f} ms, p99 {1000 * p99:.1f} ms "
        f"(min {1000 * ordered[0]:.1f}, max {1000 * ordered[-1]:.1f}, n={len(ordered)})"
    )


def create(api: UnleashApi, name: str, rollout: int, on: bool = True) -> None:
    base = "/api/admin/projects/default/features"
    api.post(base, {"name": name, "type": "release"})
    api.post(
        f"{base}/{name}/environments/{ENV}/strategies",
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": str(rollout), "stickiness": "default", "groupId": name},
        },
    )
    if on:
        api.post(f"{base}/{name}/environments/{ENV}/on")


def action_latency(
    backend: UnleashFlagBackend, audit: AuditLog, flag: str, runs: int
) -> list[float]:
    samples = []
    for index in range(runs):
        action = Action.ADVANCE if index % 2 == 0 else Action.ROLLBACK
        to = 25.0 if action is Action.ADVANCE else 5.0
        request = ActionRequest(action, ENV, "benchmark", OPERATOR, flag, to_percentage=to)
        started = time.perf_counter()
        result = execute_action(request, backend, audit, passing)
        samples.append(time.perf_counter() - started)
        assert result.applied, result.error
    return samples


def sdk_delay(
    server: LocalUnleash, backend: UnleashFlagBackend, audit: AuditLog, flag: str, runs: int
) -> list[float]:
    cache = Path(tempfile.mkdtemp(prefix="bench-unleash-sdk-"))
    client = UnleashClient(
        url=server.api_url,
        app_name="bench",
        instance_id="bench-1",
        custom_headers={"Authorization": server.sdk_tokens[ENV]},
        refresh_interval=1,
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(cache),
    )
    client.initialize_client()
    users = [str(user) for user in range(1000)]

    def share() -> float:
        return sum(client.is_enabled(flag, {"userId": u}) for u in users) / len(users)

    samples = []
    try:
        for index in range(runs):
            action = Action.ADVANCE if index % 2 == 0 else Action.ROLLBACK
            to = 25.0 if action is Action.ADVANCE else 5.0
            arrived: Callable[[float], bool] = (
                (lambda s: s > 0.15) if action is Action.ADVANCE else (lambda s: s < 0.15)
            )
            request = ActionRequest(action, ENV, "benchmark", OPERATOR, flag, to_percentage=to)
            assert execute_action(request, backend, audit, passing).applied
            returned = time.perf_counter()
            while not arrived(share()):
                time.sleep(0.02)
            samples.append(time.perf_counter() - returned)
            time.sleep(0.3)
    finally:
        client.destroy()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--sdk-runs", type=int, default=10)
    parser.add_argument("--emergency-flags", type=int, default=20)
    args = parser.parse_args()
    name = f"bench_unleash_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="bench-unleash-"))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = start_unleash(f"postgres://postgres@127.0.0.1:5432/{name}", work / "unleash.log")
    try:
        api = UnleashApi(server.url, server.admin_token, 30)
        backend = UnleashFlagBackend(api)
        audit = AuditLog(open_database(f"sqlite:///{work / 'metrics.db'}"), work / "j.jsonl")
        create(api, "bench_flag", 5)

        print(
            "action latency, project of 1 feature:",
            summary(action_latency(backend, audit, "bench_flag", args.actions)),
        )
        print(
            "action -> SDK sees it (refresh_interval 1 s):",
            summary(sdk_delay(server, backend, audit, "bench_flag", args.sdk_runs)),
        )

        for name in (f"emergency_{i:02d}" for i in range(args.emergency_flags)):
            create(api, name, 25)
        request = ActionRequest(Action.EMERGENCY, ENV, "benchmark", OPERATOR)
        started = time.perf_counter()
        result = execute_action(request, backend, audit, passing)
        took = time.perf_counter() - started
        assert result.per_flag is not None and set(result.per_flag.values()) == {APPLIED}
        print(
            f"emergency rollback of {len(result.per_flag)} flags, each its own "
            f"compare-and-set: {took:.2f} s ({1000 * took / len(result.per_flag):.0f} ms a flag)"
        )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda i: create(api, f"feature_{i:04d}", i % 101, i % 2 == 0),
                    range(args.features - 1),
                )
            )
        print(f"created {args.features - 1} more features in {time.perf_counter() - started:.1f} s")

        loads = []
        for _ in range(10):
            started = time.perf_counter()
            snapshot = backend.load(ENV)
            loads.append(time.perf_counter() - started)
        print(f"load of {len(snapshot.config.flags)} features:", summary(loads))
        print(
            f"action latency, project of {len(snapshot.config.flags)} features:",
            summary(action_latency(backend, audit, "bench_flag", args.actions)),
        )
        request = ActionRequest(Action.EMERGENCY, ENV, "benchmark", OPERATOR)
        started = time.perf_counter()
        result = execute_action(request, backend, audit, passing)
        took = time.perf_counter() - started
        assert result.per_flag is not None and set(result.per_flag.values()) == {APPLIED}
        print(
            f"emergency rollback of {len(result.per_flag)} flags in a project of "
            f"{len(snapshot.config.flags)}: {took:.2f} s "
            f"({1000 * took / len(result.per_flag):.0f} ms a flag)"
        )
    finally:
        server.stop()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
