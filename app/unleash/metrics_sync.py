"""Copying Unleash's hourly client metrics into the evaluation roll-ups, so that their
history outlives Unleash's 48 hours (`rollout-dashboard sync-unleash`; `serve` runs it
every `ROLLOUT_UNLEASH_SYNC_MINUTES`).

The mapping (docs/unleash.md, "History from Unleash"): an Unleash feature is a flag, an Unleash
environment an environment; one roll-up per hour (3,600 s from the hour Unleash gives),
flag, environment, SDK app (`origin` = `unleash:<appName>`) and variant, with reason
`split` (Unleash reports no reason; the yes/no of a flexibleRollout is its percentage
split). Variants: a named variant keeps its name; the `yes` not in a named variant is
`on`, every `no` is `off` (the dashboard's convention); `disabled` is already counted in
yes or no. So the evaluations of an hour always add up to yes + no.

Idempotent: a run replaces, in one transaction, every Unleash roll-up of each (flag,
hour) for which Unleash has data: a stored hour is replaced, never added to, and the
still-filling current hour is rewritten by the next run (rows already equal to
Unleash's are kept, so a re-run with nothing new writes nothing). Hours Unleash answers with
zeros only (it zero-fills every hour of the window, purged ones included) are left
alone: what was stored for them outlives Unleash.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text

from app.errors import RolloutError
from app.metrics_db.database import rollup_values
from app.metrics_db.records import EvaluationRollup
from app.metrics_db.schema import RollupRow
from app.unleash.api import UnleashApi, UnleashUnavailable

__all__ = [
    "MAX_HOURS",
    "ORIGIN_PREFIX",
    "HourlyUsage",
    "Replaced",
    "SyncReport",
    "UnleashMetricsInvalid",
    "evaluations_by_variant",
    "fetch_usage",
    "hours_to_replace",
    "parse_raw_metrics",
    "replace_unleash_hours",
    "rollups_of",
    "sync_periodically",
    "sync_unleash",
]

#: Unleash keeps client metrics this long; its raw API's `hoursBack` goes no further
MAX_HOURS = 48
ORIGIN_PREFIX = "unleash:"
HOUR = timedelta(hours=1)
ENABLED_VARIANT = "on"
DISABLED_VARIANT = "off"
#: the variant an SDK reports when it served none; already counted in yes or no
UNLEASH_NO_VARIANT = "disabled"
REASON = "split"
#: concurrent raw-metrics requests (one per feature); Unleash's client API allows far more
WORKERS = 4
#: serialises syncs on PostgreSQL (pg_advisory_xact_lock); SQLite's write lock does it there
_LOCK_KEY = 0x756E6C6561736831


class UnleashMetricsInvalid(RolloutError, ValueError):
    """An answer of the raw metrics API that is not of the shape Unleash 8 gives."""


@dataclass(frozen=True)
class HourlyUsage:
    """What one SDK app reported for one feature in one environment and hour."""

    feature: str
    app: str
    environment: str
    hour: datetime
    yes: int
    no: int
    variants: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SyncReport:
    """One sync: features listed, distinct hours with data, Unleash rows with data read,
    roll-ups written, kept (already equal) and deleted (replaced, or gone from Unleash's
    answer for an hour it has data for)."""

    project: str
    hours_back: int
    features: int
    hours: int
    usage_rows: int
    rollups: int
    unchanged: int
    deleted: int
    seconds: float
    first_hour: datetime | None = None
    last_hour: datetime | None = None

    def summary(self) -> str:
        span = (
            ""
            if self.first_hour is None or self.last_hour is None
            else f" ({self.first_hour:%Y-%m-%d %H:00} to {self.last_hour:%Y-%m-%d %H:00} UTC)"
        )
        return (
            f"synced {_count(self.features, 'feature')} of Unleash project {self.project} "
            f"(last {self.hours_back} h): {_count(self.hours, 'hour')} with data{span}, "
            f"{_count(self.usage_rows, 'app/environment row')}, "
            f"{_count(self.rollups, 'roll-up')} written, {self.unchanged:,} unchanged, "
            f"{self.deleted:,} replaced or gone, in {self.seconds:.1f} s"
        )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def parse_raw_metrics(feature: str, document: Any) -> list[HourlyUsage]:
    """The rows with data of `GET /api/admin/client-metrics/features/{feature}/raw`
    (zero-filled rows left out); UnleashMetricsInvalid naming what is wrong."""
    if not isinstance(document, Mapping):
        raise UnleashMetricsInvalid(f"{feature}: the answer is not an object")
    rows = document.get("data")
    if not isinstance(rows, list):
        raise UnleashMetricsInvalid(f"{feature}: the answer has no list of rows (`data`)")
    usages = []
    for row in rows:
        usage = _usage(feature, row)
        if usage.yes or usage.no:
            usages.append(usage)
    return usages


def _usage(feature: str, row: Any) -> HourlyUsage:
    if not isinstance(row, Mapping):
        raise UnleashMetricsInvalid(f"{feature}: a row is not an object")
    if row.get("featureName") != feature:
        raise UnleashMetricsInvalid(
            f"{feature}: a row is about another feature ({str(row.get('featureName'))[:100]})"
        )
    texts = {}
    for key in ("appName", "environment"):
        value = row.get(key)
        if not isinstance(value, str) or not value or len(value) > 190:
            raise UnleashMetricsInvalid(f"{feature}: `{key}` is not a name")
        texts[key] = value
    variants = row.get("variants") or {}
    if not isinstance(variants, Mapping) or not all(
        isinstance(name, str) and _is_count(count) for name, count in variants.items()
    ):
        raise UnleashMetricsInvalid(f"{feature}: `variants` is not a map of counts")
    counts = {}
    for key in ("yes", "no"):
        if not _is_count(row.get(key)):
            raise UnleashMetricsInvalid(f"{feature}: `{key}` is not a count")
        counts[key] = int(row[key])
    return HourlyUsage(
        feature,
        texts["appName"],
        texts["environment"],
        _hour(feature, row.get("timestamp")),
        counts["yes"],
        counts["no"],
        tuple(sorted((str(name), int(count)) for name, count in variants.items())),
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hour(feature: str, value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise UnleashMetricsInvalid(f"{feature}: `timestamp` is not an instant") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment != moment.replace(minute=0, second=0, microsecond=0):
        raise UnleashMetricsInvalid(f"{feature}: `timestamp` is not the start of an hour")
    return moment


def evaluations_by_variant(yes: int, no: int, variants: Mapping[str, int]) -> dict[str, int]:
    """Evaluations per dashboard variant of one Unleash row: named variants as named,
    the rest of `yes` as `on`, `no` as `off` (`disabled` is inside yes or no); no zeros.
    Named counts above `yes` (never seen from a real SDK) leave `on` at 0."""
    named = {
        name: count for name, count in variants.items() if name != UNLEASH_NO_VARIANT and count > 0
    }
    result = dict(named)
    for name, count in (
        (ENABLED_VARIANT, max(0, yes - sum(named.values()))),
        (DISABLED_VARIANT, no),
    ):
        if count:
            result[name] = result.get(name, 0) + count
    return result


def rollups_of(usages: Iterable[HourlyUsage]) -> list[EvaluationRollup]:
    """One hour-long roll-up per usage row and dashboard variant."""
    return [
        EvaluationRollup(
            interval_start=usage.hour,
            interval_seconds=HOUR.total_seconds(),
            environment=usage.environment,
            flag=usage.feature,
            variant=variant,
            reason=REASON,
            evaluations=count,
            origin=ORIGIN_PREFIX + usage.app,
        )
        for usage in usages
        for variant, count in evaluations_by_variant(
            usage.yes, usage.no, dict(usage.variants)
        ).items()
    ]


def hours_to_replace(usages: Iterable[HourlyUsage]) -> set[tuple[str, datetime]]:
    """The (flag, hour) pairs Unleash has data for: each is replaced as a whole."""
    return {(usage.feature, usage.hour) for usage in usages}


@dataclass(frozen=True)
class Replaced:
    """What `replace_unleash_hours` did: roll-ups written (new or changed), kept as they
    were (equal to Unleash's), and deleted (changed, or a variant no longer there)."""

    written: int
    unchanged: int
    deleted: int


def replace_unleash_hours(engine: Engine, usages: Sequence[HourlyUsage]) -> Replaced:
    """In one transaction, make the Unleash roll-ups of every (flag, hour) with data
    exactly `rollups_of(usages)`: rows already equal are kept, the others deleted, the
    missing ones inserted (so a re-run with nothing new writes nothing). Concurrent
    syncs wait for each other (PostgreSQL advisory lock; SQLite's write lock)."""
    replaced = hours_to_replace(usages)
    if not replaced:
        return Replaced(0, 0, 0)
    wanted = {_key(values): values for values in rollup_values(rollups_of(usages))}
    stale: list[int] = []
    unchanged = 0
    with engine.begin() as connection:
        _lock(connection)
        for flags, hours in _hour_groups(replaced):
            stored = connection.execute(
                select(*_KEY_COLUMNS, RollupRow.id, RollupRow.evaluations).where(
                    RollupRow.flag.in_(flags),
                    RollupRow.interval_start.in_(hours),
                    RollupRow.origin.startswith(ORIGIN_PREFIX),
                )
            )
            for *key, row_id, evaluations in stored:
                same = wanted.get(tuple(key))
                if same is not None and same["evaluations"] == evaluations:
                    del wanted[tuple(key)]
                    unchanged += 1
                else:
                    stale.append(row_id)
        for first in range(0, len(stale), ID_CHUNK):
            chunk = stale[first : first + ID_CHUNK]
            connection.execute(delete(RollupRow).where(RollupRow.id.in_(chunk)))
        if wanted:
            connection.execute(insert(RollupRow), list(wanted.values()))
    return Replaced(len(wanted), unchanged, len(stale))


#: the columns that make a copied roll-up unique (the `uq_rollups_copied` index)
_KEY_COLUMNS = (
    RollupRow.flag,
    RollupRow.interval_start,
    RollupRow.origin,
    RollupRow.environment,
    RollupRow.variant,
    RollupRow.reason,
)
#: ids per DELETE statement
ID_CHUNK = 1000


def _key(values: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(values[column.key] for column in _KEY_COLUMNS)


def _lock(connection: Connection) -> None:
    """Serialise syncs for the rest of the transaction, before anything is read."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    else:  # a write takes SQLite's write lock (a read alone would not, and could go stale)
        connection.execute(delete(RollupRow).where(RollupRow.id == -1))


#: flags per SELECT (with up to 48 hours: far below any bind-parameter limit)
FLAG_CHUNK = 500


def _hour_groups(
    replaced: set[tuple[str, datetime]],
) -> list[tuple[list[str], list[datetime]]]:
    """The (flag, hour) pairs as few `flag IN (...) AND hour IN (...)` pairs as exactly
    cover them: flags with the same set of hours share a statement (usually all do)."""
    hours_of: dict[str, set[datetime]] = {}
    for flag, hour in replaced:
        hours_of.setdefault(flag, set()).add(hour)
    flags_of: dict[frozenset[datetime], list[str]] = {}
    for flag, hours in sorted(hours_of.items()):
        flags_of.setdefault(frozenset(hours), []).append(flag)
    return [
        (flags[start : start + FLAG_CHUNK], sorted(hours))
        for hours, flags in flags_of.items()
        for start in range(0, len(flags), FLAG_CHUNK)
    ]


def fetch_usage(
    api: UnleashApi, project: str, hours: int, workers: int = WORKERS
) -> tuple[list[str], list[HourlyUsage]]:
    """The project's feature names and every usage row with data of the last `hours`
    hours (1..48); UnleashUnavailable / UnleashRefused from the API, UnleashUnavailable
    for an answer of another shape; ValueError for `hours` out of range."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be 1 to {MAX_HOURS} (Unleash keeps {MAX_HOURS} h)")
    listed = api.get(f"/api/admin/projects/{urllib.parse.quote(project, safe='')}/features")
    try:
        names = [str(feature["name"]) for feature in listed["features"]]
    except (TypeError, KeyError):
        raise UnleashUnavailable("the project's feature list is of another shape") from None

    def usage_of(name: str) -> list[HourlyUsage]:
        path = f"/api/admin/client-metrics/features/{urllib.parse.quote(name, safe='')}/raw"
        try:
            return parse_raw_metrics(name, api.get(path, {"hoursBack": hours}))
        except UnleashMetricsInvalid as error:
            raise UnleashUnavailable(f"metrics of another shape: {error}") from None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        per_feature = list(pool.map(usage_of, names))
    return names, [usage for usages in per_feature for usage in usages]


def sync_unleash(
    api: UnleashApi,
    engine: Engine,
    project: str,
    hours: int = MAX_HOURS,
    clock: Callable[[], float] = time.monotonic,
) -> SyncReport:
    """Read the last `hours` hours of the project's client metrics, then replace the
    hours with data in the roll-ups (see the module's docstring). Errors as
    `fetch_usage`; SQLAlchemy's when the database fails (nothing written then)."""
    started = clock()
    names, usages = fetch_usage(api, project, hours)
    replaced = replace_unleash_hours(engine, usages)
    stamps = sorted({usage.hour for usage in usages})
    return SyncReport(
        project=project,
        hours_back=hours,
        features=len(names),
        hours=len(stamps),
        usage_rows=len(usages),
        rollups=replaced.written,
        unchanged=replaced.unchanged,
        deleted=replaced.deleted,
        seconds=clock() - started,
        first_hour=stamps[0] if stamps else None,
        last_hour=stamps[-1] if stamps else None,
    )


def sync_periodically(
    sync_once: Callable[[], object],
    every: timedelta,
    stop: threading.Event,
    log: Callable[[str], None],
) -> None:
    """Run `sync_once` now and then every `every` until `stop` is set; a failure is
    logged on one line and the next run comes as planned (a sync never stops `serve`)."""
    while not stop.is_set():
        try:
            sync_once()
        except Exception as error:  # whatever failed, serve goes on
            log(f"unleash sync failed: {failure_line(error)}")
        stop.wait(every.total_seconds())


def failure_line(error: BaseException) -> str:
    """`error` on one line of at most 300 characters, with its type."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}"[:300]
