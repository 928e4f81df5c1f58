"""`MetricsSource` answered by any PromQL-compatible server (Prometheus, VictoriaMetrics…).

Each question is one PromQL query covering every flag; label values go through
`queries.promql`, and every failure surfaces as `SourceUnavailable`.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from queries.frames import (
    ERROR_COUNT_COLUMNS,
    ERROR_RATE_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    INSTANCE_VERSION_COLUMNS,
    LATENCY_COLUMNS,
    SLOT_COUNT_COLUMNS,
    SLOT_ERROR_COLUMNS,
    VARIANT_COUNT_COLUMNS,
    CountQuestions,
    check_slot_span,
    empty_frame,
    slot_frame,
    sparkline_frame,
)
from queries.guardrails import GUARDRAIL_COLUMNS
from queries.histogram import check_quantiles
from queries.names import FAILED_VARIANT, ErrorsIn, Evidence, MetricNames
from queries.promql import label_name, promql_duration, promql_string, selector
from queries.series_math import as_utc
from queries.source import QueryLog, SourceUnavailable

__all__ = ["PrometheusMetrics", "PrometheusQuestions"]

_DETAIL_LIMIT = 200

#: series recorded by deploy/prometheus/rollout.rules.yml (seed names, 5-minute rates)
RECORDED_EVALUATIONS = "flag_variant:feature_flag_evaluations:rate5m"
RECORDED_ERRORS = "flag:feature_flag_evaluation_errors:rate5m"
RECORDED_BUCKETS = "flag_le:feature_flag_evaluation_duration_seconds_bucket:rate5m"
RECORDED_QUANTILES = "flag_quantile:feature_flag_evaluation_duration_seconds:rate5m"
RECORDED_REASONS = "flag_variant_reason:feature_flag_evaluations:rate5m"
RECORDED_SPARKLINE = "flag:feature_flag_evaluations:rate1m"
RECORDED_WINDOW = timedelta(minutes=5)
#: a counter's growth over each slot: the difference of its values at the slot's two
#: ends (the newest sample at or before each), per series, never negative. Unlike
#: `increase` nothing is extrapolated, so consecutive slots add up exactly to the growth
#: over them whatever the scrape interval (`increase` over 30 s slots scraped every 15 s
#: sees one interval of two and doubles it: half the events, counted twice). A slot in
#: which a series restarts or first appears counts nothing of it: never more than happened.
SLOT_GROWTH = "slot growth"
#: the quantiles RECORDED_QUANTILES holds, by their `quantile` label
RECORDED_QUANTILE_LABELS = frozenset({"0.5", "0.99"})
#: the step of RECORDED_SPARKLINE: its rule's rate window and evaluation interval
RECORDED_STEP = timedelta(minutes=1)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _client_error_detail(message: str) -> str:
    """`HTTP 400: <Prometheus's error text>` from the client's exception message.

    The client formats it as `HTTP Status Code 400 (b'<reply body>')`.
    """
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b'.*'|b\".*\")\)", message, re.DOTALL)
    if match is None:
        return "error reply"
    status = f"HTTP {match.group(1)}"
    try:
        body = ast.literal_eval(match.group(2))
        reply = json.loads(body)
    except (ValueError, SyntaxError):
        return status
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        return f"{status}: {reply['error']}"
    return status


def _over(function: str, selector: str, duration: str) -> str:
    """`function` (a PromQL range function, or `SLOT_GROWTH`) of `selector` over `duration`."""
    if function == SLOT_GROWTH:
        return f"(({selector} - {selector} offset {duration}) >= 0)"
    return f"{function}({selector}[{duration}])"


def _sum_by(labels: Sequence[str], expression: str) -> str:
    """`sum by (labels) (expression)`, or `sum(expression)` for no label."""
    return f"sum by ({', '.join(labels)}) ({expression})" if labels else f"sum({expression})"


def _timed_out(error: requests.RequestException) -> bool:
    """True for a timeout, also when urllib3 wrapped it once retries ran out."""
    if isinstance(error, requests.Timeout):
        return True
    cause = error.args[0] if error.args else None
    if not isinstance(cause, MaxRetryError):
        return False
    # urllib3 makes a refused connection a subclass of its connect timeout
    reason = cause.reason
    return isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)


class PrometheusMetrics(CountQuestions):
    """Evaluation metrics from a Prometheus HTTP API, names and labels from `names`."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        names: MetricNames = MetricNames(),  # noqa: B008 - frozen dataclass, immutable
        timeout_seconds: float = 5.0,
        retries: int = 0,
        recorded: bool = False,
    ) -> None:
        self.names = names
        #: ask the recording rules' series first (deploy/prometheus/rollout.rules.yml)
        self.recorded = recorded
        self.timeout_seconds = timeout_seconds
        #: every PromQL text sent, in order (a "queries per page load" figure reads it)
        self.issued: QueryLog = QueryLog()
        self._safe_url = _without_credentials(url.rstrip("/"))
        retry = Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=None,
        )
        self._client = PrometheusConnect(
            url=url.rstrip("/"), disable_ssl=True, retry=retry, timeout=timeout_seconds
        )

    # -- the questions -------------------------------------------------------------

    def evaluation_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        """Evaluations per second by flag and variant over `window` ending at `at`."""
        flag_label = label_name(self.names.flag_label)
        variant_label = label_name(self.names.variant_label)
        by = f"sum by ({flag_label}, {variant_label})"
        queries = [
            self.evaluations_sum("rate", window, environment, flag, (flag_label, variant_label))
        ]
        if self._recording_usable(window):
            recorded = self.series(RECORDED_EVALUATIONS, environment, flag)
            queries.insert(0, f"{by} ({recorded})")
        result = self._first_answer(queries, at)
        with self.reading_reply():
            rows = [
                (
                    series["metric"].get(flag_label, ""),
                    series["metric"].get(variant_label, ""),
                    float(series["value"][1]),
                )
                for series in result
            ]
        return self._frame(rows, EVALUATION_RATE_COLUMNS)

    def error_rates(
        self, environment: str, window: timedelta, at: datetime, flag: str | None = None
    ) -> pd.DataFrame:
        """Failed evaluations per second by flag; empty when `names.errors` is unset."""
        if not self.names.errors:
            return empty_frame(ERROR_RATE_COLUMNS)
        flag_label = label_name(self.names.flag_label)
        series = self.series(self.names.errors, environment, flag)
        raw = self.scoped(f"rate({series}[{promql_duration(window)}])", environment)
        result = self._first_answer(
            [
                f"sum by ({flag_label}) ({inner})"
                for inner in self._recorded_or_raw(RECORDED_ERRORS, raw, window, environment, flag)
            ],
            at,
        )
        with self.reading_reply():
            rows = [
                (series["metric"].get(flag_label, ""), float(series["value"][1]))
                for series in result
            ]
        return self._frame(rows, ERROR_RATE_COLUMNS)

    def error_counts(self, environment: str, window: timedelta, at: datetime) -> pd.DataFrame:
        """Failed evaluations by flag over `window`, counted by the error counter (its
        `increase`, as `variant_counts` counts evaluations); empty when `names.errors` is
        unset."""
        if not self.names.errors:
            return empty_frame(ERROR_COUNT_COLUMNS)
        flag_label = label_name(self.names.flag_label)
        failed = self.series(self.names.errors, environment)
        raw = self.scoped(f"increase({failed}[{promql_duration(window)}])", environment)
        queries = [f"sum by ({flag_label}) ({raw})"]
        if self._recording_usable(window):
            # increase over the window = its rate x its seconds, exactly as PromQL has it
            seconds = promql_duration(window).removesuffix("s")
            recorded = self.series(RECORDED_ERRORS, environment)
            queries.insert(0, f"sum by ({flag_label}) ({recorded}) * {seconds}")
        result = self._first_answer(queries, at)
        with self.reading_reply():
            rows = [
                (series["metric"].get(flag_label, ""), float(series["value"][1]))
                for series in result
            ]
        return self._frame(rows, ERROR_COUNT_COLUMNS)

    def latency_quantiles(
        self,
        environment: str,
        window: timedelta,
        at: datetime,
        quantiles: tuple[float, ...] = (0.5, 0.99),
        flag: str | None = None,
    ) -> pd.DataFrame:
        """Latency seconds by flag and quantile, all quantiles in one query; NaN dropped.

        Empty when `names.duration` is unset; ValueError for a quantile outside (0, 1).
        """
        check_quantiles(quantiles)
        if not self.names.duration or not quantiles:
            return empty_frame(LATENCY_COLUMNS)
        flag_label = label_name(self.names.flag_label)
        raw = self.scoped(
            f"rate({self.series(self.names.duration + '_bucket', environment, flag)}"
            f"[{promql_duration(window)}])",
            environment,
        )
        by_text = {repr(float(quantile)): float(quantile) for quantile in quantiles}
        queries = [
            " or ".join(
                f"label_replace(histogram_quantile({text}, sum by ({flag_label}, le) ({inner})), "
                f'"quantile", {promql_string(text)}, "", "")'
                for text in by_text
            )
            for inner in self._recorded_or_raw(RECORDED_BUCKETS, raw, window, environment, flag)
        ]
        if self._recording_usable(window) and by_text.keys() <= RECORDED_QUANTILE_LABELS:
            # the quantiles themselves recorded: one series per flag and quantile
            queries.insert(0, self.series(RECORDED_QUANTILES, environment, flag))
        result = self._first_answer(queries, at)
        rows: list[tuple[object, ...]] = []
        with self.reading_reply():
            for series in result:
                seconds = float(series["value"][1])
                quantile = by_text.get(series["metric"]["quantile"])
                if quantile is not None and not math.isnan(seconds):
                    rows.append((series["metric"].get(flag_label, ""), quantile, seconds))
        return self._frame(rows, LATENCY_COLUMNS)

    def evaluation_sparklines(
        self, environment: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """Evaluations per second by flag at every `step` from `start` to `end`."""
        flag_label = label_name(self.names.flag_label)
        queries = [self.evaluations_sum("rate", step, environment, None, (flag_label,))]
        if self._recording_usable(step, RECORDED_STEP):
            # the same rate, as of each rule evaluation (at most one step earlier)
            queries.insert(
                0, f"sum by ({flag_label}) ({self.series(RECORDED_SPARKLINE, environment)})"
            )
        result: list[dict[str, Any]] = []
        for query in queries:
            result = self.range(query, start, end, step)
            if result:
                break
        with self.reading_reply():
            return sparkline_frame(result, flag_label)

    def newest_sample_time(self, environment: str, at: datetime) -> datetime | None:
        """Time of the newest evaluation sample within Prometheus's lookback before `at`
        (a failed one too, where the emitter counts those apart)."""
        metrics = [self.names.evaluations]
        if not self.names.errors_counted_in_evaluations and self.names.errors:
            metrics.append(self.names.errors)
        return self.newest_time(metrics, environment, at)

    def _counts(
        self, environment: str, window: timedelta, at: datetime, flag: str | None
    ) -> pd.DataFrame:
        """Evaluations by flag, variant and reason over `window` (`flag`: only that one)."""
        labels = [
            label_name(name)
            for name in (self.names.flag_label, self.names.variant_label, self.names.reason_label)
            if name  # an emitter without a reason label: every reason reads ""
        ]
        by = f"sum by ({', '.join(labels)})"
        queries = [self.evaluations_sum("increase", window, environment, flag, tuple(labels))]
        if self._recording_usable(window):
            # increase over the window = its rate x its seconds, exactly as PromQL has it
            seconds = promql_duration(window).removesuffix("s")
            recorded = self.series(RECORDED_REASONS, environment, flag)
            queries.insert(0, f"{by} ({recorded}) * {seconds}")
        result = self._first_answer(queries, at)
        with self.reading_reply():
            rows = [
                (
                    series["metric"].get(self.names.flag_label, ""),
                    series["metric"].get(self.names.variant_label, ""),
                    series["metric"].get(self.names.reason_label, ""),
                    float(series["value"][1]),
                )
                for series in result
            ]
        return self._frame(rows, VARIANT_COUNT_COLUMNS)

    def slot_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """Evaluations by flag, variant and reason per slot: one range query, a point at
        every slot end in (start, end], each the counters' growth over its slot
        (`SLOT_GROWTH`; failed evaluations counted apart added as `evaluations_sum` adds
        them). Consecutive slots add up exactly to the growth over them, whatever the
        scrape interval."""
        check_slot_span(start, end, slot)
        names = (self.names.flag_label, self.names.variant_label, self.names.reason_label)
        present = tuple(name for name in names if name)  # no reason label: reason ""
        query = self.evaluations_sum(
            SLOT_GROWTH, slot, environment, None, tuple(label_name(n) for n in present)
        )
        result = self._slots(query, start, end, slot)
        with self.reading_reply():
            return slot_frame(result, names, SLOT_COUNT_COLUMNS)

    def slot_error_counts(
        self, environment: str, start: datetime, end: datetime, slot: timedelta
    ) -> pd.DataFrame:
        """Failures by flag per slot as the error counter counts them (its growth over
        each slot, as `slot_counts` counts evaluations); empty when `names.errors` is
        unset."""
        check_slot_span(start, end, slot)
        if not self.names.errors:
            return empty_frame(SLOT_ERROR_COLUMNS)
        flag_label = label_name(self.names.flag_label)
        failed = self.series(self.names.errors, environment)
        raw = self.scoped(_over(SLOT_GROWTH, failed, promql_duration(slot)), environment)
        result = self._slots(f"sum by ({flag_label}) ({raw})", start, end, slot)
        with self.reading_reply():
            return slot_frame(result, (self.names.flag_label,), SLOT_ERROR_COLUMNS)

    def guardrail_counts(
        self,
        query: str,
        labels: tuple[str, str],
        start: datetime,
        end: datetime,
        slot: timedelta,
    ) -> pd.DataFrame:
        """A guardrail's counts per slot, by its flag and variant labels."""
        check_slot_span(start, end, slot)
        result = self._slots(query, start, end, slot)
        with self.reading_reply():
            return slot_frame(result, labels, GUARDRAIL_COLUMNS)

    def _slots(
        self, query: str, start: datetime, end: datetime, slot: timedelta
    ) -> list[dict[str, Any]]:
        """The range result of `query` at every slot end in (start, end]; none asked for
        an empty span."""
        if end <= start:
            return []
        return self.range(query, start + slot, end, slot)

    def instance_versions(self, environment: str, at: datetime) -> pd.DataFrame:
        """The `config_version` each scraped instance reports in `config_info`; empty
        when the emitter has no such gauge (`unavailable_evidence` says so)."""
        if not self.names.config_info:
            return empty_frame(INSTANCE_VERSION_COLUMNS)
        info = self.series(self.names.config_info, environment, None)
        query = f"max by (instance, config_version) ({self.scoped(info, environment)})"
        result = self.instant(query, at)
        with self.reading_reply():
            rows = [
                (series["metric"].get("instance", ""), series["metric"].get("config_version", ""))
                for series in result
            ]
        return self._frame(rows, INSTANCE_VERSION_COLUMNS)

    # -- plumbing --------------------------------------------------------------------

    def _recorded_or_raw(
        self, recorded: str, raw: str, window: timedelta, environment: str, flag: str | None
    ) -> list[str]:
        """The recorded series first when they can answer (setting on, the seed's names,
        their 5-minute window), then the raw expression."""
        usable = self._recording_usable(window)
        return [self.series(recorded, environment, flag), raw] if usable else [raw]

    def _recording_usable(
        self, window: timedelta, recorded_window: timedelta = RECORDED_WINDOW
    ) -> bool:
        """Whether deploy/prometheus/rollout.rules.yml's series can answer a question over
        `window`: the setting is on, the names are the seed's, the windows agree."""
        return self.recorded and self.names == MetricNames() and window == recorded_window

    def _first_answer(self, queries: Sequence[str], at: datetime) -> list[dict[str, Any]]:
        """The first non-empty result (recorded series missing: the raw expression)."""
        result: list[dict[str, Any]] = []
        for query in queries:
            result = self.instant(query, at)
            if result:
                break
        return result

    # -- the transport every question goes through, here and in `queries.canary` and
    # `queries.flag_series` -------------------------------------------------------------

    @property
    def errors_in(self) -> ErrorsIn:
        """Where the emitter counts a failed evaluation (`MetricNames.failures_in`)."""
        return self.names.failures_in

    @property
    def unavailable_evidence(self) -> frozenset[Evidence]:
        """What this emitter's metrics cannot tell (no config-info gauge, no histogram…)."""
        return self.names.missing

    def no_series_hint(self, environment: str) -> str:
        """What a page says when no series was found for `environment`: where it looked."""
        if self.names.single_environment:
            return (
                f"{self.name}: no series of {self.names.evaluations} at all (single-environment "
                "mode: there is no environment label to look for)."
            )
        where = self.names.environment_lookup(environment)
        return (
            f"{self.name}: no series of {self.names.evaluations} for environment "
            f"{promql_string(environment)}; looked for {where}."
        )

    def scoped(self, expression: str, environment: str) -> str:
        """`expression` (an instant vector) kept to the series of `environment`. With the
        environment in an info metric (OpenTelemetry's `target_info`), a `group_left`
        join on `environment_join`; otherwise unchanged (`series` put the label in the
        selector, or single-environment mode has none)."""
        names = self.names
        if not names.environment_joined:
            return expression
        on = ", ".join(label_name(label) for label in names.environment_join)
        info = selector(names.environment_info, {names.environment_label: environment})
        return f"({expression}) * on ({on}) group_left () group by ({on}) ({info})"

    def evaluations_sum(
        self,
        function: str,
        window: timedelta,
        environment: str,
        flag: str | None,
        by: Sequence[str],
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """`sum by (<by>) (<function>(evaluations[window]))` in `environment`. Where the
        emitter counts a failed evaluation only in `errors` (OpenFeature), those are
        added, under variant `FAILED_VARIANT` and reason `ERROR`; not when `labels`
        narrow the evaluations (to one variant)."""
        names, duration = self.names, promql_duration(window)
        evaluated = self.series(names.evaluations, environment, flag, labels=labels)
        text = _sum_by(by, self.scoped(_over(function, evaluated, duration), environment))
        if names.errors_counted_in_evaluations or not names.errors or labels:
            return text
        named = {names.variant_label: FAILED_VARIANT, names.reason_label: "ERROR"}
        failed = self.series(names.errors, environment, flag)
        errors = _sum_by(
            [label for label in by if label not in named],
            self.scoped(_over(function, failed, duration), environment),
        )
        for label, value in named.items():
            if label in by:
                errors = (
                    f"label_replace({errors}, {promql_string(label_name(label))}, "
                    f'{promql_string(value)}, "", "")'
                )
        return f"{text} or {errors}"

    def series(
        self,
        metric: str,
        environment: str,
        flag: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        matching: Mapping[str, str] | None = None,
    ) -> str:
        """The selector of `metric` in `environment` (and of `flag`), with further
        `labels` equal and `matching` labels matching a regex; every value escaped."""
        wanted = {}
        if self.names.environment_label and not self.names.environment_joined:
            wanted[self.names.environment_label] = environment
        if flag is not None:
            wanted[self.names.flag_label] = flag
        return selector(metric, {**wanted, **(labels or {})}, matching)

    def instant(self, query: str, at: datetime) -> list[dict[str, Any]]:
        """The result list of an instant query at `at`; SourceUnavailable if none."""
        return self._call(
            query,
            lambda: self._client.custom_query(query, params={"time": as_utc(at).timestamp()}),
        )

    def range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[dict[str, Any]]:
        """The result matrix of a range query, a point every `step` from `start` to
        `end`; SourceUnavailable if none."""
        step_text = promql_duration(step)
        return self._call(
            query,
            lambda: self._client.custom_query_range(
                query, start_time=as_utc(start), end_time=as_utc(end), step=step_text
            ),
        )

    def newest_time(
        self, metric: str | Sequence[str], environment: str, at: datetime
    ) -> datetime | None:
        """Time of the newest sample of `metric` (of any of them) in `environment` within
        Prometheus's lookback before `at`; None when there is none."""
        metrics = [metric] if isinstance(metric, str) else list(metric)
        stamps = " or ".join(
            self.scoped(f"timestamp({self.series(name, environment)})", environment)
            for name in metrics
        )
        result = self.instant(f"max({stamps})", at)
        if not result:
            return None
        with self.reading_reply():
            seconds = float(result[0]["value"][1])
        return datetime.fromtimestamp(seconds, tz=UTC)

    def range_points(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[dict[str, str], float, float]]:
        """(labels, epoch seconds, value) of every point of a range query."""
        result = self.range(query, start, end, step)
        points: list[tuple[dict[str, str], float, float]] = []
        with self.reading_reply():
            for series in result:
                labels = dict(series["metric"])
                for stamp, value in series["values"]:
                    points.append((labels, float(stamp), float(value)))
        return points

    @contextmanager
    def reading_reply(self) -> Iterator[None]:
        """Turn a reply of the wrong shape, met while reading it, into `SourceUnavailable`."""
        try:
            yield
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise self._unavailable(f"unexpected reply ({type(error).__name__})") from error

    def _call(self, query: str, send: Callable[[], object]) -> list[dict[str, Any]]:
        """Send one query; every way it can fail becomes `SourceUnavailable`."""
        self.issued.append(query)
        try:
            result = send()
        except requests.RequestException as error:
            if _timed_out(error):
                detail = f"no answer within {self.timeout_seconds:g}s"
            elif isinstance(error, requests.ConnectionError):
                detail = f"cannot connect to {self._safe_url}"
            else:
                # an unreadable (non-JSON) reply, or retries used up on 502/503/504
                detail = f"bad reply ({type(error).__name__})"
            raise self._unavailable(detail) from error
        except PrometheusApiClientException as error:
            raise self._unavailable(_client_error_detail(str(error))) from error
        except (KeyError, TypeError, ValueError) as error:
            raise self._unavailable(f"unexpected reply ({type(error).__name__})") from error
        if not isinstance(result, list):
            raise self._unavailable("unexpected reply (result is not a list)")
        return result

    def _unavailable(self, detail: str) -> SourceUnavailable:
        detail = detail.replace(self._client.url, self._safe_url)
        if len(detail) > _DETAIL_LIMIT:
            detail = detail[: _DETAIL_LIMIT - 1] + "…"
        return SourceUnavailable(self.name, detail)

    @staticmethod
    def _frame(rows: Sequence[tuple[object, ...]], columns: tuple[str, ...]) -> pd.DataFrame:
        if not rows:
            return empty_frame(columns)
        frame = pd.DataFrame(rows, columns=list(columns))
        return frame.sort_values(list(columns[:-1]), ignore_index=True)


class PrometheusQuestions:
    """Base of further question sets (canary, flag series) sent through a
    `PrometheusMetrics`'s transport: its client, timeout, errors and `issued` list."""

    name = "prometheus"

    def __init__(self, prometheus: PrometheusMetrics) -> None:
        self.prometheus = prometheus
        self.names = prometheus.names

    @property
    def issued(self) -> list[str]:
        return self.prometheus.issued
