"""The demo workload: synthetic users evaluating every flag, continuously.

It runs the reference evaluator (sticky SHA-256 bucketing, targeting rules, hot reload)
for two environments, over the YAML files or, with the dashboard's
`ROLLOUT_FLAG_BACKEND=sql`, over the flags in the metrics database; it exposes the
docs/design.md §3 metrics on `/metrics`, and writes one roll-up per flag/variant/reason
every interval into the metrics database, so the dashboard has real, moving numbers with
or without Prometheus.

Texture, so every page has something to show: `phase2_health_checks` fails about 7 %
of its evaluations in production (unhealthy), the treatment of
`phase1_config_externalization` fails 3 % more often than its baseline (an advance is
refused), `ab_testing` is slow (degraded p99), and the canary track of the HTTP metrics
has a higher error ratio and latency than stable. `--failing-treatment FLAG:40@25` makes
the treatment of FLAG fail 40 % of its evaluations in production once FLAG is at 25 % or
more: the regression the demo's autopilot rolls back by itself (app/demo/autopilot_demo.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from sqlalchemy import Engine

from app.flags.backend import FlagBackend
from app.flags.evaluator import (
    EvaluationContext,
    EvaluationMetrics,
    EvaluationResult,
    FlagEvaluator,
    Reason,
    evaluate,
)
from app.flags.loader import ConfigInvalid
from app.flags.model import FlagConfig, FlagDefinition
from app.metrics_db.database import insert_rollups, open_database, report_instance
from app.metrics_db.records import (
    LATENCY_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    EvaluationRollup,
    RequestRollup,
)
from queries.canary import insert_request_rollups

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["FailingTreatment", "RollupAccumulator", "Workload", "main"]

ENVIRONMENTS = ("production", "staging")
#: flag -> (environment -> error probability); every other flag fails 0.2 % of the time
ERROR_PROBABILITY = {
    "phase2_health_checks": {"production": 0.07, "staging": 0.01},
    # the demo's walkthrough flag (advance it on Flag detail): clean, so its guards pass
    "ab_testing": {"production": 0.0, "staging": 0.0},
    # the flag the demo's autopilot ramps: clean, so that no chance difference between
    # its treatment and its baseline ever reads as a regression
    "phase1_pydantic_settings": {"production": 0.0, "staging": 0.0},
}
#: flag -> extra error probability of its rollout variant in production: healthy overall,
#: but the treatment fails more than the baseline (the advance guard's two-proportion test)
TREATMENT_ERROR_PROBABILITY = {"phase1_config_externalization": 0.03}
#: flag -> median evaluation latency in seconds (others: 0.4 ms)
MEDIAN_LATENCY = {"ab_testing": 0.03}
TRAFFIC_SCALE = {"production": 1.0, "staging": 0.3}
#: the simulated service instances, all served by this process's evaluators
INSTANCES = ("app-1", "app-2", "app-3")


#: how often a request served under a flag's variant fails, whatever the variant
SERVED_FAILURE_PROBABILITY = 0.005


@dataclass(frozen=True)
class FailingTreatment:
    """The treatment of `flag` fails `probability` (0..1) more of its evaluations in
    `environment` (None: every one) once the flag is at `from_percentage` or more: a
    regression that appears with a step of the rollout (0: at once)."""

    flag: str
    probability: float
    from_percentage: float
    environment: str | None = "production"

    def applies(self, environment: str, percentage: float) -> bool:
        """Whether the treatment fails in `environment` with the flag at `percentage`."""
        return self.environment in (None, environment) and percentage >= self.from_percentage

    @classmethod
    def parse(cls, text: str) -> FailingTreatment:
        """'FLAG:40@25': 40 % of FLAG's treatment fails from 25 % up; ValueError else."""
        flag, _, rest = text.partition(":")
        share, _, start = rest.partition("@")
        try:
            probability, from_percentage = float(share) / 100, float(start)
        except ValueError:
            raise ValueError(f"{text!r}: write it as FLAG:40@25") from None
        if not flag or not 0 < probability <= 1 or not 0 <= from_percentage <= 100:
            raise ValueError(f"{text!r}: FLAG:FAIL_PCT@FROM_PCT, both percentages 0..100")
        return cls(flag, probability, from_percentage)


def _traffic(flag: str) -> float:
    """Mean evaluations per second of `flag` in production: stable per flag, 0.5 to 12."""
    digest = int(hashlib.sha256(flag.encode()).hexdigest()[:6], 16)
    return 0.5 + (digest % 1150) / 100


@dataclass
class _Cell:
    evaluations: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


class RollupAccumulator:
    """Counts evaluations per environment/flag/variant/reason until `drain`."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, str, str], _Cell] = defaultdict(_Cell)

    def add(self, environment: str, result: EvaluationResult, latency: float) -> None:
        cell = self._cells[(environment, result.flag_key, result.variant, result.reason.value)]
        cell.evaluations += 1
        cell.errors += result.reason is Reason.ERROR
        cell.latency_sum += latency
        cell.latency_counts[bisect_left(LATENCY_BUCKETS, latency)] += 1

    def drain(self, start: datetime, seconds: float) -> list[EvaluationRollup]:
        """The roll-ups of the interval [start, start + seconds), emptying the counts."""
        rollups = []
        for (environment, flag, variant, reason), cell in sorted(self._cells.items()):
            cumulative, running = [], 0
            for count in cell.latency_counts:
                running += count
                cumulative.append(running)
            rollups.append(
                EvaluationRollup(
                    start,
                    seconds,
                    environment,
                    flag,
                    variant,
                    reason,
                    cell.evaluations,
                    cell.errors,
                    cell.latency_sum,
                    cell.evaluations,
                    tuple(cumulative),
                )
            )
        self._cells.clear()
        return rollups


class RequestAccumulator:
    """Counts HTTP requests per environment and track until `drain`."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], _Cell] = defaultdict(
            lambda: _Cell(latency_counts=[0] * (len(REQUEST_LATENCY_BUCKETS) + 1))
        )

    def add(self, environment: str, track: str, failed: bool, latency: float) -> None:
        cell = self._cells[(environment, track)]
        cell.evaluations += 1
        cell.errors += failed
        cell.latency_sum += latency
        cell.latency_counts[bisect_left(REQUEST_LATENCY_BUCKETS, latency)] += 1

    def drain(self, start: datetime, seconds: float) -> list[RequestRollup]:
        """The roll-ups of the interval [start, start + seconds), emptying the counts."""
        rollups = [
            RequestRollup(
                start,
                seconds,
                environment,
                track,
                cell.evaluations,
                cell.errors,
                cell.latency_sum,
                cell.evaluations,
                tuple(accumulate(cell.latency_counts)),
            )
            for (environment, track), cell in sorted(self._cells.items())
        ]
        self._cells.clear()
        return rollups


class Evaluators(Protocol):
    """What the workload evaluates through, per environment: the reference evaluator
    over the YAML files or a flag backend, or the real Unleash SDK
    (app/demo/unleash_workload.py)."""

    @property
    def config(self) -> FlagConfig: ...

    def maybe_reload(self) -> object: ...

    def evaluate(
        self, flag: FlagDefinition, context: EvaluationContext, now: datetime
    ) -> EvaluationResult: ...


class _Reference:
    """The reference evaluator over the YAML files or a flag backend, hot-reloaded."""

    def __init__(self, evaluator: FlagEvaluator) -> None:
        self._evaluator = evaluator

    @property
    def config(self) -> FlagConfig:
        return self._evaluator.config

    def maybe_reload(self) -> object:
        return self._evaluator.maybe_reload()

    def evaluate(
        self, flag: FlagDefinition, context: EvaluationContext, now: datetime
    ) -> EvaluationResult:
        return evaluate(flag, context, now)


class Workload:
    """Synthetic users and services for the demo; deterministic for a given seed. It
    evaluates through the reference evaluator over `flags` (the YAML base file, or a flag
    backend such as the `sql` one), or through `evaluators` (environment → Evaluators)
    when given."""

    def __init__(
        self,
        flags: Path | FlagBackend | None,
        registry: CollectorRegistry,
        seed: int = 7,
        evaluators: Mapping[str, Evaluators] | None = None,
        failing: Sequence[FailingTreatment] = (),
    ) -> None:
        self.failing = {f.flag: f for f in failing}
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self.metrics = EvaluationMetrics(registry)
        if evaluators is None:
            assert flags is not None
            evaluators = {
                env: _Reference(FlagEvaluator(flags, env, self.metrics)) for env in ENVIRONMENTS
            }
        self.evaluators: Mapping[str, Evaluators] = evaluators
        self.rollups = RollupAccumulator()
        self.requests = RequestAccumulator()
        self._requests = Counter(
            "http_requests", "HTTP requests", ["track", "code", "environment"], registry=registry
        )
        #: each evaluation serves one request under its variant: the service's own metric
        #: your guardrails judge (docs/metrics.md), apart from the flag's evaluations
        self._served = Counter(
            "served_requests",
            "Requests served under a flag's variant",
            ["feature_flag_key", "variant", "code", "environment"],
            registry=registry,
        )
        self.failing_requests: dict[str, float] = {}
        self._served_children: dict[tuple[str, str, str, str], Any] = {}
        self._served_rng = random.Random(seed + 1)  # noqa: S311 - apart from the evaluations'
        self._request_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["track", "environment"],
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=registry,
        )

    def tick(self, seconds: float, now: datetime, *, export: bool = True) -> int:
        """Simulate `seconds` of traffic at `now`; returns the evaluations made."""
        made = 0
        for env, evaluator in self.evaluators.items():
            evaluator.maybe_reload()
            for key, flag in evaluator.config.flags.items():
                mean = _traffic(key) * TRAFFIC_SCALE.get(env, 0.3) * seconds
                for _ in range(self._poisson(mean)):
                    self._evaluate_one(env, flag, now, export)
                    made += 1
            self._serve_requests(env, seconds, export)
        return made

    def fail_treatment(self, flag: str, probability: float) -> None:
        """From the next evaluation on, `flag`'s rollout variant fails `probability` more
        often (0 ends the regression): one injected while running."""
        self.failing[flag] = FailingTreatment(flag, probability, 0.0, environment=None)

    def fail_requests(self, flag: str, probability: float) -> None:
        """From now on, the requests served under `flag`'s rollout variant fail
        `probability` more often, its evaluations staying clean (0 ends it)."""
        self.failing_requests[flag] = probability

    def report_instances(self, engine: Engine, now: datetime) -> None:
        """Heartbeat of the simulated instances: the config version each has loaded."""
        for env, evaluator in self.evaluators.items():
            for instance in INSTANCES:
                report_instance(engine, env, instance, evaluator.config.loaded_version, now)

    def _evaluate_one(self, env: str, flag: FlagDefinition, now: datetime, export: bool) -> None:
        rng = self.rng
        context = EvaluationContext(
            user_id=f"user-{rng.randrange(100_000)}",
            user_type="admin" if rng.random() < 0.02 else "member",
            environment=env,
            custom_attributes={"beta_user": rng.random() < 0.05},
        )
        result = self.evaluators[env].evaluate(flag, context, now)
        failing = ERROR_PROBABILITY.get(flag.key, {}).get(env, 0.002)
        if result.variant == flag.rollout.variant:
            if env == "production":
                failing += TREATMENT_ERROR_PROBABILITY.get(flag.key, 0.0)
            regression = self.failing.get(flag.key)
            if regression is not None and regression.applies(env, flag.percentage):
                failing += regression.probability
        if rng.random() < failing:
            # The failure happened while serving this variant: it keeps the label, so a
            # treatment that fails more than its baseline shows up per variant.
            result = EvaluationResult(
                flag.key, result.variant, result.value, Reason.ERROR, "provider_timeout"
            )
        latency = rng.lognormvariate(0, 0.6) * MEDIAN_LATENCY.get(flag.key, 0.0004)
        self.rollups.add(env, result, latency)
        if export:
            self.metrics.record(result, env, latency)
            self._serve(env, flag, result.variant)

    def _serve(self, env: str, flag: FlagDefinition, variant: str) -> None:
        """The request this evaluation decided: 0.5 % fail, and the treatment's injected
        share more (`fail_requests`)."""
        failing = SERVED_FAILURE_PROBABILITY
        if variant == flag.rollout.variant:
            failing += self.failing_requests.get(flag.key, 0.0)
        code = "500" if self._served_rng.random() < failing else "200"
        key = (flag.key, variant, code, env)
        child = self._served_children.get(key)
        if child is None:  # a labels() lookup per evaluation would double its cost
            child = self._served_children[key] = self._served.labels(*key)
        child.inc()

    def _serve_requests(self, env: str, seconds: float, export: bool) -> None:
        for track, rate, failing, median in (
            ("stable", 40, 0.005, 0.08),
            ("canary", 8, 0.04, 0.11),
        ):
            for _ in range(self._poisson(rate * seconds * TRAFFIC_SCALE.get(env, 0.3))):
                failed = self.rng.random() < failing
                latency = self.rng.lognormvariate(0, 0.4) * median
                self.requests.add(env, track, failed, latency)
                if export:
                    self._requests.labels(track, "500" if failed else "200", env).inc()
                    self._request_seconds.labels(track, env).observe(latency)

    def _poisson(self, mean: float) -> int:
        # Knuth's method is fine for the small means simulated here.
        if mean <= 0:
            return 0
        if mean > 30:
            return max(0, round(self.rng.gauss(mean, mean**0.5)))
        limit, count, product = pow(2.718281828459045, -mean), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count


def backfill(
    workload: Workload, engine: Engine, until: datetime, minutes: int, interval: float
) -> int:
    """Write `minutes` of simulated history ending at `until` (not exported as metrics)."""
    written = 0
    start = until - timedelta(minutes=minutes)
    while start < until:
        workload.tick(interval, start, export=False)
        written += insert_rollups(engine, workload.rollups.drain(start, interval))
        insert_request_rollups(engine, workload.requests.drain(start, interval))
        start += timedelta(seconds=interval)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.demo.simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--flags-file",
        type=Path,
        default=None,
        help="the YAML base file the evaluator reads (yaml), or imports into an empty "
        "database on a first start as the dashboard does (sql)",
    )
    parser.add_argument(
        "--flag-backend",
        choices=("yaml", "sql"),
        default=None,
        help="where the evaluator reads flags: the files of --flags-file (yaml) or the "
        "dashboard's metrics database, hot-reloaded (sql); default: sql when "
        "ROLLOUT_FLAG_BACKEND=sql, else yaml",
    )
    parser.add_argument(
        "--unleash-api-url",
        default=None,
        help="evaluate through the Unleash SDK at this URL (…/api); the SDK tokens, one per "
        "environment, come from ROLLOUT_DEMO_UNLEASH_SDK_TOKENS (JSON)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="where roll-ups are written, and flags read with the sql backend (default: "
        "the dashboard's, ROLLOUT_DATABASE_URL)",
    )
    parser.add_argument("--port", type=int, default=9464, help="/metrics port (0: none)")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="interface /metrics binds (0.0.0.0 in a container, for Prometheus to scrape)",
    )
    parser.add_argument("--interval", type=float, default=10.0, help="roll-up interval, s")
    parser.add_argument("--history-minutes", type=int, default=30)
    parser.add_argument(
        "--failing-treatment",
        type=_failing_treatment,
        action="append",
        default=[],
        metavar="FLAG:FAIL_PCT@FROM_PCT",
        help="the treatment of FLAG fails FAIL_PCT %% of its evaluations in production from "
        "FROM_PCT %% up (e.g. phase1_environment_configs:40@25); repeatable",
    )
    args = parser.parse_args(argv)

    from app.settings import FlagBackendKind, SettingsInvalid, load_settings

    try:
        settings = load_settings()  # the dashboard's, from ROLLOUT_*
    except SettingsInvalid as error:
        parser.error(str(error))
    if args.database_url is None:
        args.database_url = settings.resolved_database_url
    engine = open_database(args.database_url)
    registry = CollectorRegistry()
    if args.unleash_api_url:
        from app.demo.unleash_workload import connect
        from app.runtime import open_backend

        tokens = json.loads(os.environ.get("ROLLOUT_DEMO_UNLEASH_SDK_TOKENS", "{}"))
        backend = open_backend(settings, None)
        evaluators = connect(args.unleash_api_url, tokens, backend)
        workload = Workload(None, registry, evaluators=evaluators, failing=args.failing_treatment)
    elif (args.flag_backend or settings.flag_backend) == FlagBackendKind.SQL:
        flags = _sql_flags(settings, engine, args.flags_file)
        workload = Workload(flags, registry, failing=args.failing_treatment)
    elif args.flags_file is not None:
        workload = Workload(args.flags_file, registry, failing=args.failing_treatment)
    else:
        parser.error("--flags-file, --flag-backend sql or --unleash-api-url is required")
    if args.port:
        start_http_server(args.port, addr=args.address, registry=registry)
    now = _aligned_now(args.interval)
    if args.history_minutes:
        backfill(workload, engine, now, args.history_minutes, args.interval)

    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    interval_start = now
    parent = os.getppid()
    while not stopping and os.getppid() == parent:  # never outlive the demo that started us
        workload.tick(1.0, datetime.now(UTC))
        workload.report_instances(engine, datetime.now(UTC))
        if datetime.now(UTC) >= interval_start + timedelta(seconds=args.interval):
            insert_rollups(engine, workload.rollups.drain(interval_start, args.interval))
            insert_request_rollups(engine, workload.requests.drain(interval_start, args.interval))
            interval_start += timedelta(seconds=args.interval)
        time.sleep(max(0.0, 1.0 - (time.time() % 1.0)))
    return 0


def _sql_flags(settings: Settings, engine: Engine, flags_file: Path | None) -> FlagBackend:
    """The `sql` flag backend on `engine`, filled once from `flags_file` (else the
    dashboard's flag file) if the database holds no flags, as the dashboard does on its
    first start; said on stderr when it stays empty (the evaluator picks the flags up
    once they are imported)."""
    from app.runtime import EMPTY_SQL_BACKEND, open_backend

    if flags_file is not None:
        settings = settings.model_copy(update={"flags_file": flags_file})
    try:
        backend = open_backend(settings, engine)
    except ConfigInvalid as error:
        raise SystemExit(f"error: cannot import the flag file: {error}") from None
    if not backend.environments():
        print(f"warning: {EMPTY_SQL_BACKEND}; until then no flag is evaluated", file=sys.stderr)
    return backend


def _failing_treatment(text: str) -> FailingTreatment:
    try:
        return FailingTreatment.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _aligned_now(interval: float) -> datetime:
    now = time.time()
    return datetime.fromtimestamp(now - now % interval, UTC)


if __name__ == "__main__":
    sys.exit(main())
