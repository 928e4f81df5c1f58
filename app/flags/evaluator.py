"""The seed's reference flag evaluation, with the docs/design.md §3 Prometheus metrics.

`evaluate` is pure (flag, context, time in; result out). `FlagEvaluator` wraps it for
a service or simulator: it owns a loaded config, hot-reloads it when the YAML files or
the flag backend (the `sql` one: the metrics database) change, and records every
evaluation in an `EvaluationMetrics`.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Metric
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.flags.backend import FlagBackend
from app.flags.loader import ConfigInvalid, load_config, override_path
from app.flags.model import FlagConfig, FlagDefinition, FlagState, RolloutStrategy
from app.metrics_db.records import LATENCY_BUCKETS
from queries.names import MetricNames
from queries.source import SourceUnavailable

__all__ = [
    "CONFIG_RELOAD_ERRORS",
    "EvaluationContext",
    "EvaluationMetrics",
    "EvaluationResult",
    "FlagEvaluator",
    "Reason",
    "bucket",
    "evaluate",
]

CONFIG_RELOAD_ERRORS = "feature_flag_config_reload_errors_total"


class Reason(StrEnum):
    STATIC = "static"
    TARGETING_MATCH = "targeting_match"
    SPLIT = "split"
    DISABLED = "disabled"
    DEFAULT = "default"
    ERROR = "error"


@dataclass(frozen=True)
class EvaluationContext:
    """Who a flag is evaluated for; conditions see these fields by name."""

    user_id: str
    user_type: str = ""
    environment: str = ""
    custom_attributes: Mapping[str, Any] = field(default_factory=dict)

    def as_mapping(self) -> Mapping[str, Any]:
        """The names a targeting condition can use."""
        return {
            "user_id": self.user_id,
            "user_type": self.user_type,
            "environment": self.environment,
            "custom_attributes": self.custom_attributes,
        }


@dataclass(frozen=True)
class EvaluationResult:
    flag_key: str
    variant: str
    value: Any
    reason: Reason
    error_type: str | None = None


# The hot paths compare with this, not `Reason.ERROR`: an enum member lookup is slow.
_ERROR = Reason.ERROR


def bucket(flag_key: str, user_id: str) -> float:
    """The user's sticky position in [0, 100) for this flag (the seed's SHA-256 bucketing).

    A user is in a rollout iff bucket < percentage, so raising the percentage never
    turns anyone off.
    """
    return _position(_key_digest(flag_key), user_id)


def _key_digest(flag_key: str) -> Any:
    """SHA-256 state after `flag_key:`, so a flag's users are hashed without redoing it."""
    return hashlib.sha256(f"{flag_key}:".encode())


def _position(key_digest: Any, user_id: str) -> float:
    """bucket(): the first 32 bits of sha256(`flag_key:user_id`) mod 10,000, over 100."""
    digest = key_digest.copy()
    digest.update(user_id.encode())
    return int.from_bytes(digest.digest()[:4]) % 10000 / 100


def evaluate(flag: FlagDefinition, context: EvaluationContext, now: datetime) -> EvaluationResult:
    """Evaluate `flag` for `context` at `now`, following the seed's rules; never raises.

    A targeting rule whose condition fails counts as no match.
    """
    return _SHARED_PLANS.plan(flag).evaluate(context, context.environment, lambda: now)


def _random_position() -> float:
    # Non-sticky rollouts re-draw on every evaluation; same resolution as bucket().
    return secrets.randbelow(10000) / 100


def _result(flag: FlagDefinition, variant: str, reason: Reason) -> EvaluationResult:
    return EvaluationResult(flag.key, variant, flag.variants.get(variant), reason)


class _FlagPlan:
    """One flag compiled for evaluation: what `evaluate` would work out on every call
    (rule order, compiled conditions, the hashed key prefix, the possible results) is
    worked out once. Results are frozen, so every evaluation that lands on the same
    outcome shares one."""

    __slots__ = (
        "bucketed",
        "default",
        "fixed",
        "flag",
        "listed",
        "percentage",
        "prefix",
        "rules",
        "schedule",
        "split",
        "user_list",
    )

    def __init__(self, flag: FlagDefinition) -> None:
        self.flag = flag
        rollout = flag.rollout
        self.rules = tuple(
            (rule.compiled, _result(flag, rule.variant, Reason.TARGETING_MATCH))
            for rule in flag.ordered_rules
        )
        #: the result that needs no rollout: disabled (before rules), enabled (after)
        self.fixed: EvaluationResult | None = None
        if flag.state is FlagState.DISABLED:
            self.fixed = _result(flag, flag.default_variant, Reason.DISABLED)
            self.rules = ()
        elif flag.state is FlagState.ENABLED:
            self.fixed = _result(flag, rollout.variant, Reason.STATIC)
        self.default = _result(flag, flag.default_variant, Reason.DEFAULT)
        self.split = _result(flag, rollout.variant, Reason.SPLIT)
        self.listed = _result(flag, rollout.variant, Reason.TARGETING_MATCH)
        self.user_list = (
            frozenset(rollout.user_list) if rollout.strategy is RolloutStrategy.USER_LIST else None
        )
        self.bucketed = rollout.sticky
        self.prefix = _key_digest(flag.key)
        # Resolved here: an enum member lookup per evaluation costs as much as a dict's.
        self.percentage = rollout.percentage
        self.schedule = rollout if rollout.strategy is RolloutStrategy.GRADUAL else None

    def evaluate(
        self, context: EvaluationContext, environment: str, clock: Callable[[], datetime]
    ) -> EvaluationResult:
        """`evaluate` of this flag, the context's environment given as `environment`;
        `clock` is only called for a schedule."""
        if self.rules:
            attributes = {
                "user_id": context.user_id,
                "user_type": context.user_type,
                "environment": environment,
                "custom_attributes": context.custom_attributes,
            }
            for condition, result in self.rules:
                try:
                    if condition(attributes):
                        return result
                except Exception:  # noqa: S112 - a broken rule must not break the flag: no match
                    continue
        if self.fixed is not None:
            return self.fixed
        if self.user_list is not None:
            return self.listed if context.user_id in self.user_list else self.default
        position = _position(self.prefix, context.user_id) if self.bucketed else _random_position()
        percentage = self.percentage
        if self.schedule is not None:
            now = clock()
            percentage = self.schedule.percentage_at(now if now.tzinfo else now.replace(tzinfo=UTC))
        return self.split if position < percentage else self.default


class _PlanCache:
    """Compiled plans by flag object, for `evaluate`: a flag replaced (by a reload or a
    copy) is compiled again, as each plan keeps the flag it was made from."""

    def __init__(self, limit: int) -> None:
        self._plans: dict[int, _FlagPlan] = {}
        self._limit = limit

    def plan(self, flag: FlagDefinition) -> _FlagPlan:
        plan = self._plans.get(id(flag))
        if plan is None or plan.flag is not flag:
            if len(self._plans) >= self._limit:
                self._plans = {}  # plans keep their flags alive: bound them
            plan = self._plans[id(flag)] = _FlagPlan(flag)
        return plan


# For `evaluate` callers that keep their flags (the simulator, tests).
_SHARED_PLANS = _PlanCache(4096)


def _counter_name(name: str) -> str:
    # prometheus_client appends `_total` itself; keeping it would give `_total_total`.
    return name.removesuffix("_total")


class _EvaluationTally(Collector):
    """The evaluation counter and latency histogram of docs/design.md §3, counted in plain dicts.

    Exposes exactly what a prometheus_client `Counter` and `Histogram` with the same
    names, labels and buckets would (`_total`, `_bucket`, `_count`, `_sum`, `_created`).
    """

    def __init__(self, names: MetricNames) -> None:
        self._names = names
        self._lock = threading.Lock()
        #: (flag, variant, reason, environment) -> [evaluations, its flag's latency cells]:
        #: one lookup per evaluation finds both
        self._series: dict[tuple[str, str, str, str], list[Any]] = {}
        #: (flag, environment) -> observations per bucket (the last one +Inf), then the sum
        self._latency: dict[tuple[str, str], list[float]] = {}
        #: when each series first appeared, for the `_created` samples
        self._created: dict[tuple[str, ...], float] = {}
        self._bounds = (*(float(bound) for bound in LATENCY_BUCKETS), math.inf)
        self._le: tuple[str, ...] = tuple(map(floatToGoString, self._bounds))

    def add(self, result: EvaluationResult, environment: str, duration_seconds: float) -> None:
        """Count one evaluation of `result` in `environment` and its latency."""
        key = (result.flag_key, result.variant, result.reason, environment)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key)
            series[0] += 1
            latency = series[1]
            if latency is not None:
                latency[bisect_left(self._bounds, duration_seconds)] += 1
                latency[-1] += duration_seconds

    def _new_series(self, key: tuple[str, str, str, str]) -> list[Any]:
        """A new evaluation series (called under the lock), with its flag's histogram."""
        now = time.time()
        latency = None
        if self._names.duration:
            flag = (key[0], key[3])
            latency = self._latency.get(flag)
            if latency is None:
                latency = self._latency[flag] = [0.0] * (len(self._bounds) + 1)
                self._created[flag] = now
        self._created[key] = now
        series = self._series[key] = [0, latency]
        return series

    def describe(self) -> list[Metric]:
        """The families this collector exposes, so the registry refuses duplicates."""
        return [family for family, _ in self._families()]

    def collect(self) -> list[Metric]:
        with self._lock:
            counts = {key: series[0] for key, series in self._series.items()}
            latency = {key: list(cells) for key, cells in self._latency.items()}
            created = dict(self._created)
        families = self._families()
        evaluations, evaluation_labels = families[0]
        for key, count in counts.items():
            labels = dict(zip(evaluation_labels, map(str, key), strict=True))
            evaluations.add_sample(f"{evaluations.name}_total", labels, float(count))
            _add_created(evaluations, labels, created[key])
        if len(families) > 1:
            duration, duration_labels = families[1]
            for series, cells in latency.items():
                labels = dict(zip(duration_labels, series, strict=True))
                self._add_histogram(duration, labels, cells)
                _add_created(duration, labels, created[series])
        return [family for family, _ in families]

    def _add_histogram(self, family: Metric, labels: dict[str, str], cells: list[float]) -> None:
        total = 0.0
        for le, count in zip(self._le, cells, strict=False):
            total += count
            family.add_sample(f"{family.name}_bucket", {**labels, "le": le}, total)
        family.add_sample(f"{family.name}_count", labels, total)
        family.add_sample(f"{family.name}_sum", labels, cells[-1])

    def _families(self) -> list[tuple[Metric, tuple[str, ...]]]:
        names = self._names
        flag, env = names.flag_label, names.environment_label
        families: list[tuple[Metric, tuple[str, ...]]] = [
            (
                Metric(_counter_name(names.evaluations), "Feature flag evaluations", "counter"),
                (flag, names.variant_label, names.reason_label, env),
            )
        ]
        if names.duration:
            latency = Metric(names.duration, "Feature flag evaluation latency", "histogram")
            families.append((latency, (flag, env)))
        return families


def _add_created(family: Metric, labels: dict[str, str], created: float) -> None:
    # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES) applies here too.
    if getattr(prometheus_metrics, "_use_created", True):
        family.add_sample(f"{family.name}_created", labels, created)


class EvaluationMetrics:
    """The docs/design.md §3 metrics of one evaluator, registered in `registry`.

    An empty `names.errors` or `names.duration` means that metric is not emitted.
    """

    def __init__(self, registry: CollectorRegistry, names: MetricNames | None = None) -> None:
        self.registry = registry
        self.names = names = names or MetricNames()
        flag, env = names.flag_label, names.environment_label
        # Counted in plain dicts under one lock and exposed at scrape time: a
        # prometheus_client counter and histogram take three locks per evaluation.
        self._tally = _EvaluationTally(names)
        registry.register(self._tally)
        self._errors = (
            Counter(
                _counter_name(names.errors),
                "Failed feature flag evaluations",
                [flag, names.error_type_label, env],
                registry=registry,
            )
            if names.errors
            else None
        )
        self._config_info = Gauge(
            names.config_info,
            "The flag configuration version loaded (always 1)",
            [env, "config_version"],
            registry=registry,
        )
        self._rollout_percentage = Gauge(
            names.rollout_percentage,
            "The rollout percentage each flag is configured to apply",
            [flag, env],
            registry=registry,
        )
        self._reload_errors = Counter(
            _counter_name(CONFIG_RELOAD_ERRORS),
            "Flag configuration reloads that failed (the previous config stays)",
            [env],
            registry=registry,
        )
        self._loaded_version: dict[str, str] = {}
        self._published_percentages: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def record(self, result: EvaluationResult, environment: str, duration_seconds: float) -> None:
        """Count one evaluation (and an error if its reason is ERROR) and its latency."""
        self._tally.add(result, environment, duration_seconds)
        if result.reason is _ERROR and self._errors is not None:
            self._errors.labels(result.flag_key, result.error_type or "unknown", environment).inc()

    def config_loaded(self, config: FlagConfig, environment: str) -> None:
        """Publish `config`'s version and every flag's percentage, dropping stale series."""
        with self._lock:
            version = config.loaded_version
            previous = self._loaded_version.get(environment)
            if previous is not None and previous != version:
                self._config_info.remove(environment, previous)
            self._config_info.labels(environment, version).set(1)
            self._loaded_version[environment] = version

            published = self._published_percentages.setdefault(environment, {})
            for gone in set(published) - set(config.flags):
                self._rollout_percentage.remove(gone, environment)
                del published[gone]
            for key, flag in config.flags.items():
                # Only changed series: a reload usually changes a few of 1,000 flags.
                if published.get(key) != flag.percentage:
                    self._rollout_percentage.labels(key, environment).set(flag.percentage)
                    published[key] = flag.percentage

    def reload_failed(self, environment: str) -> None:
        self._reload_errors.labels(environment).inc()


def _utc_now() -> datetime:
    return datetime.now(UTC)


# (mtime_ns, size) of each watched file; None for a file that does not exist.
_FileSignature = tuple[tuple[int, int] | None, ...]


class _Files:
    """The YAML base file and the environment's override file: checked on every call
    (two `stat`s), loaded when either changed."""

    interval_seconds = 0.0

    def __init__(self, path: Path, environment: str) -> None:
        self.path, self.environment = path, environment
        self._watched = (path, override_path(path, environment))

    def signature(self) -> _FileSignature:
        signature: list[tuple[int, int] | None] = []
        for path in self._watched:
            try:
                stat = path.stat()
            except OSError:
                signature.append(None)
            else:
                signature.append((stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def load(self) -> FlagConfig:
        return load_config(self.path, self.environment)


class _Backend:
    """A flag backend's environment (the `sql` one: the metrics database), read with the
    backend's own `load`: asked at most once a second by default (one query), loaded when
    its `revision` moved; a backend without one is loaded and its version compared."""

    interval_seconds = 1.0

    def __init__(self, backend: FlagBackend, environment: str) -> None:
        self.backend, self.environment = backend, environment

    def signature(self) -> str | None:
        return self.backend.revision(self.environment)

    def load(self) -> FlagConfig:
        return self.backend.load(self.environment).config


class FlagEvaluator:
    """Evaluates flags of one environment, hot-reloading them: from the YAML config at
    `source` (its base file), or from a flag backend (`SqlFlagBackend` for flags kept in
    the metrics database). The config version it publishes is the backend's
    `loaded_version`, the one the propagation guard expects.

    Construction raises ConfigInvalid if the config cannot be loaded (SourceUnavailable
    if the backend does not answer); later reloads that fail keep the previous config.
    """

    def __init__(
        self,
        source: Path | FlagBackend,
        environment: str,
        metrics: EvaluationMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        *,
        reload_interval_seconds: float | None = None,
    ) -> None:
        self.source = source
        self.environment = environment
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._source = (
            _Files(source, environment)
            if isinstance(source, Path)
            else _Backend(source, environment)
        )
        #: `maybe_reload` asks the source at most this often (files: on every call)
        self.reload_interval_seconds = (
            self._source.interval_seconds
            if reload_interval_seconds is None
            else reload_interval_seconds
        )
        self._signature = self._source.signature()
        self._config = self._source.load()
        self._checked_at = time.monotonic()
        self.last_error: ConfigInvalid | SourceUnavailable | None = None
        # The config whose flags are compiled, and their plans by key (filled on use);
        # one pair, so a thread never puts an old flag's plan among a new config's.
        self._plans: tuple[FlagConfig | None, dict[str, _FlagPlan]] = (None, {})
        if metrics is not None:
            metrics.config_loaded(self._config, environment)

    @property
    def config(self) -> FlagConfig:
        return self._config

    def evaluate(
        self,
        flag_key: str,
        context: EvaluationContext,
        duration_seconds: float | None = None,
    ) -> EvaluationResult:
        """Evaluate one flag and record it; an unknown flag gives reason ERROR.

        `duration_seconds` replaces the measured latency (for simulators).
        """
        started = time.perf_counter()
        config = self._config
        compiled, plans = self._plans
        if compiled is not config:  # first use or a reload: the old flags' plans go
            plans = {}
            self._plans = (config, plans)
        plan = plans.get(flag_key)
        if plan is None:
            flag = config.flags.get(flag_key)
            if flag is not None:
                plan = plans[flag_key] = _FlagPlan(flag)
        if plan is None:
            result = EvaluationResult(flag_key, "", None, Reason.ERROR, "flag_not_found")
        else:
            result = plan.evaluate(context, context.environment or self.environment, self._clock)
        if self.metrics is not None:
            self.metrics.record(
                result,
                self.environment,
                time.perf_counter() - started if duration_seconds is None else duration_seconds,
            )
        return result

    def maybe_reload(self) -> bool:
        """Reload if the config changed; True only if a new config is live. Call it as
        often as you like: the source is asked at most every `reload_interval_seconds`.

        A config that fails to load keeps the previous one (see `last_error`): an invalid
        one is reported once, an unreachable backend on every attempt until it answers.
        """
        if time.monotonic() - self._checked_at < self.reload_interval_seconds:
            return False
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                signature = self._source.signature()
                if signature is not None and signature == self._signature:
                    return False
                config = self._source.load()
            except SourceUnavailable as error:
                # Not remembered as seen: the next attempt asks again.
                return self._failed(error)
            except ConfigInvalid as error:
                # Remember the change even if it fails, so a broken config is reported once.
                self._signature = signature
                return self._failed(error)
            self._signature = signature
            if signature is None and config.loaded_version == self._config.loaded_version:
                self.last_error = None
                return False
            self._config = config
            self.last_error = None
            if self.metrics is not None:
                self.metrics.config_loaded(config, self.environment)
            return True

    def _failed(self, error: ConfigInvalid | SourceUnavailable) -> bool:
        self.last_error = error
        if self.metrics is not None:
            self.metrics.reload_failed(self.environment)
        return False
