"""`sync-unleash` against a real Unleash fed by the real Python SDK (UnleashClient 6.9.1):
the roll-ups hold exactly what the SDK counted, re-running changes nothing, a second
batch in the same hour gives the new totals, and the SQL reader the pages use shows them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from UnleashClient import UnleashClient

from app.cli import main
from app.demo.unleash_server import LocalUnleash
from app.metrics_db.database import insert_rollups, open_database
from app.metrics_db.records import EvaluationRollup
from app.metrics_db.schema import RollupRow
from app.unleash.api import UnleashApi
from app.unleash.metrics_sync import sync_unleash
from queries.sql import SqlMetrics
from tests.conftest import fresh_postgres_database
from tests.support.servers import free_port
from tests.support.unleash import UnleashSeed

pytestmark = pytest.mark.unleash

VARIANTS = [
    {"name": "blue", "weight": 500, "weightType": "variable", "stickiness": "default"},
    {"name": "green", "weight": 500, "weightType": "variable", "stickiness": "default"},
]
#: Unleash flushes posted metrics to its database every ~5 s; the SDK posts every second
ARRIVAL_DEADLINE = 60.0
#: Unleash drops the metrics of a flag it does not know yet, and its list of known flag
#: names is cached for 10 s (metrics-service-v2.js, `cachedFeatureNames`, maxAge 10 s):
#: metrics of a flag younger than that can be lost. Wait this long after creating them.
KNOWN_FLAG_NAMES_CACHE_SECONDS = 11.0
#: flag pairs (plain, with variants) made once for the module's tests, one pair each
PAIRS = 10


@dataclass(frozen=True)
class Pair:
    """Two flags of the project, evaluated by one SDK app of one test only."""

    plain: str
    variants: str
    app: str


@pytest.fixture(scope="module")
def flag_pool(unleash_server: LocalUnleash) -> list[tuple[str, str]]:
    """`PAIRS` flag pairs in an emptied project, old enough for Unleash to count them and
    seen by its client API (so an SDK started now evaluates them)."""
    seed = UnleashSeed(unleash_server)
    seed.delete_every_feature()
    tag = uuid.uuid4().hex[:6]
    pairs = [(f"sync_plain_{tag}_{i}", f"sync_variants_{tag}_{i}") for i in range(PAIRS)]
    for plain, variants in pairs:
        seed.create(plain, rollout=30)
        seed.create(variants, rollout=50, variants=VARIANTS)
    created = time.monotonic()
    names = {name for pair in pairs for name in pair}
    request = urllib.request.Request(
        f"{unleash_server.api_url}/client/features",
        headers={"Authorization": unleash_server.sdk_tokens["production"]},
    )
    while True:
        with urllib.request.urlopen(request, timeout=30) as answer:
            served = {feature["name"] for feature in json.load(answer)["features"]}
        if names <= served:
            break
        assert time.monotonic() < created + 30, "the client API never served the new flags"
        time.sleep(0.5)
    time.sleep(max(0.0, created + KNOWN_FLAG_NAMES_CACHE_SECONDS - time.monotonic()))
    return pairs


@pytest.fixture
def pair(flag_pool: list[tuple[str, str]]) -> Pair:
    """A pair of the pool no other test of the module evaluates, and an app of its own."""
    plain, variants = flag_pool.pop()
    return Pair(plain, variants, f"sync-app-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_database("rollout_unleash_sync") as url:
        engine = open_database(url)
        yield engine
        engine.dispose()


def _api(server: LocalUnleash) -> UnleashApi:
    return UnleashApi(server.url, server.admin_token, timeout=30)


def _evaluate(
    server: LocalUnleash, tmp_path: Path, app: str, plain: str, variants: str, users: range
) -> dict[str, Counter[str]]:
    """`is_enabled` of both flags and `get_variant` of `variants` for every user, through
    the real SDK; what the SDK counted, as the dashboard's variants (on/off/named)."""
    client = UnleashClient(
        url=server.api_url,
        app_name=app,
        instance_id=f"{app}-{users.start}",
        custom_headers={"Authorization": server.sdk_tokens["production"]},
        refresh_interval=1,
        metrics_interval=1,
        cache_directory=str(tmp_path / f"cache-{users.start}"),
    )
    client.initialize_client()
    counted: dict[str, Counter[str]] = {plain: Counter(), variants: Counter()}
    try:
        for user in users:
            context = {"userId": str(user)}
            for flag in (plain, variants):
                counted[flag]["on" if client.is_enabled(flag, context) else "off"] += 1
            chosen = client.get_variant(variants, context)
            counted[variants][chosen["name"] if chosen["enabled"] else "off"] += 1
    finally:
        client.destroy()  # sends the last metrics
    return counted


def _await_reported(
    api: UnleashApi, app: str, expected: dict[str, Counter[str]], hours: int = 2
) -> None:
    """Poll the raw metrics until Unleash has stored every evaluation the SDK made."""
    totals: dict[str, int] = {}
    wanted = {flag: sum(counts.values()) for flag, counts in expected.items()}
    deadline = time.monotonic() + ARRIVAL_DEADLINE
    while time.monotonic() < deadline:
        totals = {
            flag: sum(
                row["yes"] + row["no"]
                for row in api.get(
                    f"/api/admin/client-metrics/features/{flag}/raw", {"hoursBack": hours}
                )["data"]
                if row["appName"] == app
            )
            for flag in expected
        }
        if totals == wanted:
            return
        time.sleep(0.5)
    pytest.fail(f"Unleash did not store the SDK's metrics in time: {totals} != {wanted}")


def _stored(engine: Engine, origin: str) -> dict[tuple[str, str, str], int]:
    """Evaluations per (flag, environment, variant) of `origin`, summed over the hours."""
    query = select(
        RollupRow.flag, RollupRow.environment, RollupRow.variant, RollupRow.evaluations
    ).where(RollupRow.origin == origin)
    with engine.connect() as connection:
        totals: Counter[tuple[str, str, str]] = Counter()
        for flag, environment, variant, count in connection.execute(query):
            totals[(flag, environment, variant)] += count
    return dict(totals)


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every roll-up but its id, sorted: a re-run must leave exactly these."""
    columns = [c for c in RollupRow.__table__.columns if c.name != "id"]
    with engine.connect() as connection:
        return sorted(tuple(map(str, row)) for row in connection.execute(select(*columns)))


def _expected(counted: dict[str, Counter[str]]) -> dict[tuple[str, str, str], int]:
    return {
        (flag, "production", variant): count
        for flag, counts in counted.items()
        for variant, count in counts.items()
        if count
    }


def test_the_sync_holds_what_the_sdk_counted_and_re_running_changes_nothing(
    pair: Pair, unleash_server: LocalUnleash, engine: Engine, tmp_path: Path
) -> None:
    plain, variants, app = pair.plain, pair.variants, pair.app
    api = _api(unleash_server)

    first = _evaluate(unleash_server, tmp_path, app, plain, variants, range(0, 600))
    assert 0 < first[plain]["on"] < 600 and first[variants]["blue"] > 0  # a real split
    _await_reported(api, app, first)

    report = sync_unleash(api, engine, "default", hours=2)
    assert _stored(engine, f"unleash:{app}") == _expected(first)
    assert report.features == 2 * PAIRS and report.usage_rows >= 2 * report.hours
    assert report.rollups == len(_rows(engine))

    before = _rows(engine)
    again = sync_unleash(api, engine, "default", hours=2)
    assert _rows(engine) == before
    assert (again.rollups, again.unchanged, again.deleted) == (0, report.rollups, 0)

    # the same hour fills up: the next sync replaces it with the new totals, never adds
    second = _evaluate(unleash_server, tmp_path, app, plain, variants, range(600, 1000))
    both = {flag: first[flag] + second[flag] for flag in first}
    _await_reported(api, app, both)
    final = sync_unleash(api, engine, "default", hours=2)
    assert _stored(engine, f"unleash:{app}") == _expected(both)
    assert 0 < final.deleted <= final.rollups  # the changed rows, each replaced once
    assert sum(_stored(engine, f"unleash:{app}").values()) == 3 * 1000  # 2 flags + variant

    # the reader behind the pages: counts and rates over the hours synced
    assert final.last_hour is not None
    at = final.last_hour + timedelta(hours=1)  # the end of the newest hour with data
    metrics = SqlMetrics(engine)
    for flag, counts in both.items():
        frame = metrics.flag_counts("production", flag, timedelta(hours=3), at)
        shown = dict(zip(frame["variant"], frame["evaluations"], strict=True))
        assert shown == {variant: float(n) for variant, n in counts.items() if n}
        assert set(frame["reason"]) == {"split"}
    if final.hours == 1:  # the run did not straddle an hour: a rate over that hour
        rates = metrics.evaluation_rates("production", timedelta(hours=1), at)
        got = {(f, v): r * 3600 for f, v, r in rates.itertuples(index=False) if f in both}
        assert got == pytest.approx(
            {(f, v): float(n) for f, c in both.items() for v, n in c.items() if n}
        )


def test_the_sync_leaves_other_writers_and_hours_unleash_no_longer_has(
    pair: Pair, unleash_server: LocalUnleash, engine: Engine, tmp_path: Path
) -> None:
    """A roll-up written here (the simulator's) for the same flag and hour, and one an
    earlier sync copied for an hour Unleash has purged, both survive a sync."""
    plain, variants, app = pair.plain, pair.variants, pair.app
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    kept = [
        EvaluationRollup(hour, 3600.0, "production", plain, "on", "split", 11),
        EvaluationRollup(
            hour - timedelta(hours=72),
            3600.0,
            "production",
            plain,
            "on",
            "split",
            13,
            origin=f"unleash:{app}",
        ),
    ]
    insert_rollups(engine, kept)
    api = _api(unleash_server)
    counted = _evaluate(unleash_server, tmp_path, app, plain, variants, range(0, 200))
    _await_reported(api, app, counted)

    sync_unleash(api, engine, "default", hours=48)
    stored = _stored(engine, f"unleash:{app}")
    assert stored[(plain, "production", "on")] == counted[plain]["on"] + 13
    assert _stored(engine, "") == {(plain, "production", "on"): 11}


def test_the_command_says_what_it_synced_and_never_shows_the_token(
    pair: Pair,
    unleash_server: LocalUnleash,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_rollout_environment: None,
) -> None:
    plain, variants, app = pair.plain, pair.variants, pair.app
    counted = _evaluate(unleash_server, tmp_path, app, plain, variants, range(0, 100))
    _await_reported(_api(unleash_server), app, counted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_UNLEASH_URL", unleash_server.url)
    monkeypatch.setenv("ROLLOUT_UNLEASH_TOKEN", unleash_server.admin_token)

    assert main(["sync-unleash", "--hours", "2"]) == 0
    out, _ = capsys.readouterr()
    assert f"synced {2 * PAIRS} features of Unleash project default (last 2 h)" in out
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    assert _stored(engine, f"unleash:{app}") == _expected(counted)
    engine.dispose()

    monkeypatch.setenv("ROLLOUT_UNLEASH_PROJECT", "no_such_project")
    assert main(["sync-unleash"]) == 0
    out, err = capsys.readouterr()
    assert "synced 0 features of Unleash project no_such_project" in out
    assert "ROLLOUT_UNLEASH_PROJECT" in err
    monkeypatch.delenv("ROLLOUT_UNLEASH_PROJECT")

    wrong = "*:*.not-the-admin-secret-4711"
    monkeypatch.setenv("ROLLOUT_UNLEASH_TOKEN", wrong)
    assert main(["sync-unleash"]) == 2
    out, err = capsys.readouterr()
    assert "(401)" in err and "ROLLOUT_UNLEASH_TOKEN" in err
    assert "4711" not in out + err and unleash_server.admin_token not in out + err

    monkeypatch.setenv("ROLLOUT_UNLEASH_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["sync-unleash"]) == 4
    _, err = capsys.readouterr()
    assert "Unleash unavailable" in err and "4711" not in err

    monkeypatch.delenv("ROLLOUT_UNLEASH_URL")
    assert main(["sync-unleash"]) == 2
    _, err = capsys.readouterr()
    assert "ROLLOUT_UNLEASH_URL" in err and "ROLLOUT_UNLEASH_TOKEN" in err


def test_serve_s_periodic_sync_copies_at_once(
    pair: Pair, unleash_server: LocalUnleash, tmp_path: Path
) -> None:
    from app.settings import Settings
    from app.unleash.periodic_sync import start_periodic_sync

    plain, variants, app = pair.plain, pair.variants, pair.app
    counted = _evaluate(unleash_server, tmp_path, app, plain, variants, range(0, 100))
    _await_reported(_api(unleash_server), app, counted)
    settings = Settings(
        state_dir=tmp_path,
        unleash_url=unleash_server.url,
        unleash_token=unleash_server.admin_token,
        unleash_sync_minutes=60,
    )
    assert start_periodic_sync(settings.model_copy(update={"unleash_sync_minutes": 0})) is None
    stop = start_periodic_sync(settings)
    assert stop is not None
    try:
        engine = open_database(settings.resolved_database_url)
        deadline = time.monotonic() + 30
        while _stored(engine, f"unleash:{app}") != _expected(counted):
            assert time.monotonic() < deadline, _stored(engine, f"unleash:{app}")
            time.sleep(0.2)
        engine.dispose()
    finally:
        stop.set()


def test_two_syncs_at_once_neither_fail_nor_double(
    pair: Pair, unleash_server: LocalUnleash, engine: Engine, tmp_path: Path
) -> None:
    """`serve`'s periodic sync and a `sync-unleash` by hand may overlap: they wait for
    each other (PostgreSQL advisory lock, SQLite's write lock), and the unique index on
    copied rows would refuse a double anyway."""
    api = _api(unleash_server)
    counted = _evaluate(unleash_server, tmp_path, pair.app, pair.plain, pair.variants, range(300))
    _await_reported(api, pair.app, counted)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def sync() -> None:
        start.wait()
        try:
            sync_unleash(_api(unleash_server), engine, "default", hours=2)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert _stored(engine, f"unleash:{pair.app}") == _expected(counted)
