"""The seed's reference flag evaluation, with the DESIGN §3 Prometheus metrics.

`evaluate` is pure (flag, context, time in; result out). `FlagEvaluator` wraps it for
a service or simulator: it owns a loaded config, hot-reloads it when the files
change, and records every evaluation in an `EvaluationMetrics`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.flags.loader import ConfigInvalid, load_config, override_path
from app.flags.model import FlagConfig, FlagDefinition, FlagState, RolloutStrategy
from app.metrics_db.records import LATENCY_BUCKETS
from queries.names import MetricNames

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


def bucket(flag_key: str, user_id: str) -> float:
    """The user's sticky position in [0, 100) for this flag (the seed's SHA-256 bucketing).

    A user is in a rollout iff bucket < percentage, so raising the percentage never
    turns anyone off.
    """
    digest = hashlib.sha256(f"{flag_key}:{user_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 10000 / 100


def evaluate(flag: FlagDefinition, context: EvaluationContext, now: datetime) -> EvaluationResult:
    """Evaluate `flag` for `context` at `now`, following the seed's rules; never raises.

    A targeting rule whose condition fails counts as no match.
    """
    if flag.state is FlagState.DISABLED:
        return _result(flag, flag.default_variant, Reason.DISABLED)
    attributes = context.as_mapping()
    for rule in flag.ordered_rules:
        try:
            matched = rule.compiled(attributes)
        except Exception:  # a broken rule must not break the flag: it just does not match
            matched = False
        if matched:
            return _result(flag, rule.variant, Reason.TARGETING_MATCH)
    if flag.state is FlagState.ENABLED:
        return _result(flag, flag.rollout.variant, Reason.STATIC)

    rollout = flag.rollout
    if rollout.strategy is RolloutStrategy.USER_LIST:
        if context.user_id in rollout.user_list:
            return _result(flag, rollout.variant, Reason.TARGETING_MATCH)
        return _result(flag, flag.default_variant, Reason.DEFAULT)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    position = bucket(flag.key, context.user_id) if rollout.sticky else _random_position()
    if position < rollout.percentage_at(now):
        return _result(flag, rollout.variant, Reason.SPLIT)
    return _result(flag, flag.default_variant, Reason.DEFAULT)


def _random_position() -> float:
    # Non-sticky rollouts re-draw on every evaluation; same resolution as bucket().
    return secrets.randbelow(10000) / 100


def _result(flag: FlagDefinition, variant: str, reason: Reason) -> EvaluationResult:
    return EvaluationResult(flag.key, variant, flag.variants.get(variant), reason)


def _counter_name(name: str) -> str:
    # prometheus_client appends `_total` itself; keeping it would give `_total_total`.
    return name.removesuffix("_total")


class EvaluationMetrics:
    """The DESIGN §3 metrics of one evaluator, registered in `registry`.

    An empty `names.errors` or `names.duration` means that metric is not emitted.
    """

    def __init__(self, registry: CollectorRegistry, names: MetricNames | None = None) -> None:
        self.registry = registry
        self.names = names = names or MetricNames()
        flag, env = names.flag_label, names.environment_label
        self._evaluations = Counter(
            _counter_name(names.evaluations),
            "Feature flag evaluations",
            [flag, names.variant_label, names.reason_label, env],
            registry=registry,
        )
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
        self._duration = (
            Histogram(
                names.duration,
                "Feature flag evaluation latency",
                [flag, env],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
            if names.duration
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
        self._evaluation_children: dict[tuple[str, str, str, str], Any] = {}
        self._duration_children: dict[tuple[str, str], Any] = {}
        self._published_percentages: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def record(self, result: EvaluationResult, environment: str, duration_seconds: float) -> None:
        """Count one evaluation (and an error if its reason is ERROR) and its latency."""
        # Bound children are cached: `labels()` costs more than the increment itself.
        key = (result.flag_key, result.variant, result.reason.value, environment)
        counter = self._evaluation_children.get(key)
        if counter is None:
            counter = self._evaluation_children.setdefault(key, self._evaluations.labels(*key))
        counter.inc()
        if result.reason is Reason.ERROR and self._errors is not None:
            self._errors.labels(result.flag_key, result.error_type or "unknown", environment).inc()
        if self._duration is not None:
            timer = self._duration_children.get((result.flag_key, environment))
            if timer is None:
                timer = self._duration_children.setdefault(
                    (result.flag_key, environment),
                    self._duration.labels(result.flag_key, environment),
                )
            timer.observe(duration_seconds)

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


class FlagEvaluator:
    """Evaluates flags of the config at `path` for one environment, hot-reloading it.

    Construction raises ConfigInvalid if the config cannot be loaded; later reloads
    that fail keep the previous config.
    """

    def __init__(
        self,
        path: Path,
        environment: str,
        metrics: EvaluationMetrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = path
        self.environment = environment
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._watched = (path, override_path(path, environment))
        self._signature = self._current_signature()
        self._config = load_config(path, environment)
        self.last_error: ConfigInvalid | None = None
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
        if not context.environment:
            context = replace(context, environment=self.environment)
        flag = self._config.flags.get(flag_key)
        if flag is None:
            result = EvaluationResult(flag_key, "", None, Reason.ERROR, "flag_not_found")
        else:
            result = evaluate(flag, context, self._clock())
        if self.metrics is not None:
            elapsed = time.perf_counter() - started
            self.metrics.record(
                result,
                self.environment,
                elapsed if duration_seconds is None else duration_seconds,
            )
        return result

    def maybe_reload(self) -> bool:
        """Reload if the base or override file changed; True only if a new config is live.

        A config that fails to load keeps the previous one (see `last_error`).
        """
        with self._lock:
            signature = self._current_signature()
            if signature == self._signature:
                return False
            # Remember the change even if it fails, so a broken file is reported once.
            self._signature = signature
            try:
                config = load_config(self.path, self.environment)
            except ConfigInvalid as error:
                self.last_error = error
                if self.metrics is not None:
                    self.metrics.reload_failed(self.environment)
                return False
            self._config = config
            self.last_error = None
            if self.metrics is not None:
                self.metrics.config_loaded(config, self.environment)
            return True

    def _current_signature(self) -> _FileSignature:
        signature: list[tuple[int, int] | None] = []
        for path in self._watched:
            try:
                stat = path.stat()
            except OSError:
                signature.append(None)
            else:
                signature.append((stat.st_mtime_ns, stat.st_size))
        return tuple(signature)
