"""`sync-unleash` at scale: 48 h of client metrics for 1,000 features, from a real Unleash.

Run: `uv run python -m tests.bench.bench_unleash_sync [--features 1000] [--runs 3]`.

A real unleash-server (deploy/unleash, on a fresh PostgreSQL database) gets the features
through its Admin API, then their metrics the way SDKs send them: `POST
/api/client/metrics` with a backend token, one bucket per hour of the last 48 and per
environment (production, development), one app, half the features with two variants.
Then, timed: the read side (`fetch_usage`, one raw-metrics request per feature) with 1
and with 4 concurrent requests; the whole sync (`sync_unleash`) into an empty SQLite
file, then again over what it wrote (the idempotent re-run: nothing new, so it compares
and writes nothing); the write side alone (`replace_unleash_hours`) into an empty
database; the same into PostgreSQL.
Baseline: the raw HTTP time of the same requests, one after another, with `urllib`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.demo.unleash_server import LocalUnleash, start_unleash
from app.metrics_db.database import open_database
from app.unleash.api import UnleashApi
from app.unleash.metrics_sync import MAX_HOURS, fetch_usage, replace_unleash_hours, sync_unleash
from tests.conftest import fresh_postgres_database

PROJECT = "default"
APP = "bench-app"
#: toggles per POST /api/client/metrics (Express's default JSON body limit is 100 KB)
TOGGLES_PER_POST = 200
#: Unleash drops metrics of flags younger than its 10 s cache of known flag names
KNOWN_NAMES_CACHE = 11.0


def _call(server: LocalUnleash, method: str, path: str, body: object, token: str) -> None:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()


def seed(server: LocalUnleash, features: int) -> list[str]:
    """Create the features, then post 48 hours of metrics for each; returns the names."""
    names = [f"bench_flag_{i:04d}" for i in range(features)]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda name: _call(
                    server,
                    "POST",
                    f"/api/admin/projects/{PROJECT}/features",
                    {"name": name, "type": "release"},
                    server.admin_token,
                ),
                names,
            )
        )
    time.sleep(KNOWN_NAMES_CACHE)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    posts = []
    for back in range(MAX_HOURS):
        start = hour - timedelta(hours=back)
        stop = min(start + timedelta(minutes=59), now)
        for environment in ("production", "development"):
            for first in range(0, features, TOGGLES_PER_POST):
                toggles = {
                    name: _toggle(i, back)
                    for i, name in enumerate(names[first : first + TOGGLES_PER_POST], first)
                }
                body = {
                    "appName": APP,
                    "instanceId": f"{APP}-1",
                    "bucket": {
                        "start": start.isoformat().replace("+00:00", "Z"),
                        "stop": stop.isoformat().replace("+00:00", "Z"),
                        "toggles": toggles,
                    },
                }
                posts.append((server.sdk_tokens[environment], body))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: _call(server, "POST", "/api/client/metrics", p[1], p[0]), posts))
    return names


def _toggle(i: int, back: int) -> dict[str, object]:
    yes, no = 10 + (i * 7 + back) % 50, 20 + (i * 3 + back) % 40
    if i % 2:
        return {"yes": yes, "no": no, "variants": {"blue": yes // 2, "green": yes // 3}}
    return {"yes": yes, "no": no}


def await_stored(api: UnleashApi, names: list[str], timeout: float = 120) -> None:
    """Until Unleash has flushed every hour of the last feature (it flushes every 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hours = {
            row["timestamp"]
            for name in (names[0], names[-1])
            for row in api.get(
                f"/api/admin/client-metrics/features/{name}/raw", {"hoursBack": MAX_HOURS}
            )["data"]
            if row["yes"] or row["no"]
        }
        if len(hours) >= MAX_HOURS:
            return
        time.sleep(1)
    raise SystemExit("Unleash did not store the seeded metrics in time")


def timed(runs: int, action: Callable[[], object]) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


#: every time measured, per label, in the order first shown (summed up at the end)
MEASURED: dict[str, list[float]] = {}


def show(label: str, seconds: list[float]) -> None:
    """Print a measurement now and keep it for the summary."""
    MEASURED.setdefault(label, []).extend(seconds)
    print(f"  {label}: {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)


def summary() -> None:
    print("\nsummary (median, range, runs):")
    for label, seconds in MEASURED.items():
        median = statistics.median(seconds)
        print(
            f"{label:<58} {median:7.2f} s  ({min(seconds):.2f}–{max(seconds):.2f}, "
            f"n={len(seconds)})"
        )


def raw_http(server: LocalUnleash, names: list[str]) -> None:
    for name in names:
        request = urllib.request.Request(
            f"{server.url}/api/admin/client-metrics/features/{name}/raw?hoursBack={MAX_HOURS}",
            headers={"Authorization": server.admin_token},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            json.load(answer)


@contextmanager
def local_unleash(workdir: Path) -> Iterator[LocalUnleash]:
    with fresh_postgres_database("unleash_bench") as url:
        server = start_unleash(url.replace("postgresql+psycopg://", "postgres://"), workdir / "log")
        try:
            yield server
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as scratch, local_unleash(Path(scratch)) as server:
        api = UnleashApi(server.url, server.admin_token, timeout=60)
        started = time.perf_counter()
        names = seed(server, args.features)
        await_stored(api, names)
        print(
            f"seeded {len(names)} features x {MAX_HOURS} h x 2 environments "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        show(
            "baseline: raw HTTP of the per-feature requests, in a row",
            timed(args.runs, lambda: raw_http(server, names)),
        )
        for workers in (1, 4):
            show(
                f"read side: fetch_usage, {workers} concurrent request(s)",
                timed(args.runs, lambda w=workers: fetch_usage(api, PROJECT, MAX_HOURS, w)),
            )
        _, usages = fetch_usage(api, PROJECT, MAX_HOURS)

        report = None
        for index in range(args.runs):
            sqlite = open_database(f"sqlite:///{Path(scratch) / f'metrics-{index}.db'}")
            show(
                "sync_unleash into an empty SQLite file",
                timed(1, lambda e=sqlite: sync_unleash(api, e, PROJECT, MAX_HOURS)),
            )
            show(
                "sync_unleash again (nothing new: compares, writes nothing)",
                timed(1, lambda e=sqlite: sync_unleash(api, e, PROJECT, MAX_HOURS)),
            )
            sqlite.dispose()
            empty = open_database(f"sqlite:///{Path(scratch) / f'write-{index}.db'}")
            show(
                "write side alone into an empty SQLite file",
                timed(1, lambda e=empty: replace_unleash_hours(e, usages)),
            )
            empty.dispose()
        for _ in range(args.runs):
            with fresh_postgres_database("rollout_bench_sync") as url:
                postgres = open_database(url)
                started = time.perf_counter()
                report = sync_unleash(api, postgres, PROJECT, MAX_HOURS)
                show(
                    "sync_unleash into an empty PostgreSQL database",
                    [time.perf_counter() - started],
                )
                show(
                    "sync_unleash again (nothing new)",
                    timed(1, lambda e=postgres: sync_unleash(api, e, PROJECT, MAX_HOURS)),
                )
                postgres.dispose()
            with fresh_postgres_database("rollout_bench_write") as url:
                empty = open_database(url)
                show(
                    "write side alone into an empty PostgreSQL database",
                    timed(1, lambda e=empty: replace_unleash_hours(e, usages)),
                )
                empty.dispose()
        if report is not None:
            print(report.summary())
    summary()
    print(f"machine: load {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
