"""`PrometheusMetrics` against a real Prometheus backfilled with the reference workload."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_api_client import PrometheusConnect

from queries.frames import (
    ERROR_RATE_COLUMNS,
    EVALUATION_RATE_COLUMNS,
    LATENCY_COLUMNS,
    SPARKLINE_COLUMNS,
)
from queries.names import PRESETS, MetricPreset
from queries.prometheus import PrometheusMetrics
from queries.promql import promql_string
from queries.source import MetricsSource, SourceUnavailable
from tests.support.prometheus import (
    BackfilledPrometheus,
    openmetrics_from_rollups,
    start_prometheus,
)
from tests.support.servers import free_port
from tests.support.workload import (
    EXPECTED_ERROR_RATES,
    EXPECTED_EVALUATION_RATES,
    EXPECTED_FLAG_RATES,
    EXPECTED_LATENCY_QUANTILES,
    reference_rollups,
)

pytestmark = pytest.mark.prometheus

WINDOW = timedelta(minutes=5)
HOSTILE_FLAG = 'x"}) or vector(1)'
HOSTILE_STRINGS = [
    HOSTILE_FLAG,
    "",
    "plain",
    '"',
    "\\",
    '\\"',
    "back\\slash at end\\",
    "new\nline",
    "cr\r\ntab\t",
    "\x00nul \x01 \x1f \x7f del",
    "\x80 \x9f c1 controls",
    "\u2028 line sep \ufeff bom \u200b zwsp",
    "ünïcödé ✓ 日本語 🚀 \U0010ffff",
    "$1 ${x} template-looking",
    "'single' `back`",
    '"} or vector(1) or {x="',
    "\\x41 \\u0041 literal escapes",
]


def _rates(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    columns = zip(
        frame["flag"].tolist(),
        frame["variant"].tolist(),
        frame["evaluations_per_second"].tolist(),
        strict=True,
    )
    for flag, variant, rate in columns:
        rates.setdefault(str(flag), {})[str(variant)] = float(rate)
    return rates


@pytest.fixture
def source(backfilled_prometheus: BackfilledPrometheus) -> PrometheusMetrics:
    return PrometheusMetrics(backfilled_prometheus.url)


def test_implements_the_metrics_source_protocol(source: PrometheusMetrics) -> None:
    as_protocol: MetricsSource = source
    assert as_protocol.name == "prometheus"


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_evaluation_rates_are_exact_per_flag_and_variant(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus, environment: str
) -> None:
    frame = source.evaluation_rates(environment, WINDOW, backfilled_prometheus.at)

    assert tuple(frame.columns) == EVALUATION_RATE_COLUMNS
    assert frame["evaluations_per_second"].dtype == "float64"
    expected = EXPECTED_EVALUATION_RATES[environment]
    assert _rates(frame) == {
        flag: {variant: pytest.approx(rate, rel=1e-6) for variant, rate in variants.items()}
        for flag, variants in expected.items()
    }
    assert len(source.issued) == 1  # one query covers every flag


def test_production_alpha_rates_are_the_documented_numbers(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    frame = source.evaluation_rates("production", WINDOW, backfilled_prometheus.at)
    assert _rates(frame)["alpha"] == {
        "on": pytest.approx(0.6667, rel=1e-3),
        "off": pytest.approx(0.3333, rel=1e-3),
    }


def test_evaluation_rates_for_one_flag(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    frame = source.evaluation_rates("production", WINDOW, backfilled_prometheus.at, flag="beta")
    assert _rates(frame) == {"beta": {"on": pytest.approx(3 / 15, rel=1e-6)}}


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_error_rates(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus, environment: str
) -> None:
    frame = source.error_rates(environment, WINDOW, backfilled_prometheus.at)

    assert tuple(frame.columns) == ERROR_RATE_COLUMNS
    got = dict(zip(frame["flag"], frame["errors_per_second"], strict=True))
    expected = EXPECTED_ERROR_RATES[environment]
    assert got == {
        flag: pytest.approx(rate, rel=1e-6, abs=1e-12) for flag, rate in expected.items()
    }


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_latency_quantiles_in_one_query(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus, environment: str
) -> None:
    frame = source.latency_quantiles(environment, WINDOW, backfilled_prometheus.at)

    assert tuple(frame.columns) == LATENCY_COLUMNS
    got: dict[str, dict[float, float]] = {}
    columns = zip(
        frame["flag"].tolist(), frame["quantile"].tolist(), frame["seconds"].tolist(), strict=True
    )
    for flag, quantile, seconds in columns:
        got.setdefault(str(flag), {})[float(quantile)] = float(seconds)
    expected = EXPECTED_LATENCY_QUANTILES[environment]
    assert got == {
        flag: {q: pytest.approx(s, rel=1e-6) for q, s in quantiles.items()}
        for flag, quantiles in expected.items()
    }
    assert len(source.issued) == 1


def test_latency_quantiles_are_the_documented_numbers(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    frame = source.latency_quantiles(
        "production", WINDOW, backfilled_prometheus.at, quantiles=(0.5, 0.9, 0.99), flag="alpha"
    )
    got = dict(zip(frame["quantile"], frame["seconds"], strict=True))
    # 12 of 15 observations in (0.0005, 0.001], 3 in (0.005, 0.01]
    assert got == {
        0.5: pytest.approx(0.0008125, rel=1e-6),
        0.9: pytest.approx(0.005 + 0.005 * (13.5 - 12) / 3, rel=1e-6),
        0.99: pytest.approx(0.00975, rel=1e-6),
    }


def test_latency_without_observations_in_the_window_is_empty(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    later = backfilled_prometheus.at + timedelta(minutes=20)
    frame = source.latency_quantiles("production", WINDOW, later)
    assert frame.empty
    assert tuple(frame.columns) == LATENCY_COLUMNS


def test_environment_filter_separates_the_data(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    at = backfilled_prometheus.at
    production = _rates(source.evaluation_rates("production", WINDOW, at))
    staging = _rates(source.evaluation_rates("staging", WINDOW, at))
    assert set(production) == {"alpha", "beta"}
    assert set(staging) == {"alpha", "gamma"}
    assert production["alpha"]["on"] != pytest.approx(staging["alpha"]["on"])
    assert source.evaluation_rates("nowhere", WINDOW, at).empty


def test_sparklines_hold_the_known_rate_at_every_step(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    end = backfilled_prometheus.at
    start = end - timedelta(minutes=30)
    frame = source.evaluation_sparklines("production", start, end, timedelta(seconds=60))

    assert tuple(frame.columns) == SPARKLINE_COLUMNS
    assert str(frame["timestamp"].dt.tz) == "UTC"
    expected = EXPECTED_FLAG_RATES["production"]
    assert set(frame["flag"]) == set(expected)
    for flag, points in frame.groupby("flag"):
        assert len(points) == 31
        assert points["timestamp"].min() == pd.Timestamp(start)
        assert points["timestamp"].max() == pd.Timestamp(end)
        assert (
            list(points["evaluations_per_second"])
            == [pytest.approx(expected[str(flag)], rel=1e-6)] * 31
        )


def test_sparklines_with_no_data_are_an_empty_frame(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    end = backfilled_prometheus.at - timedelta(hours=3)
    frame = source.evaluation_sparklines(
        "production", end - timedelta(minutes=30), end, timedelta(seconds=60)
    )
    assert frame.empty
    assert tuple(frame.columns) == SPARKLINE_COLUMNS


def test_newest_sample_time_is_the_end_of_the_data(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    at = backfilled_prometheus.at
    assert source.newest_sample_time("production", at) == at
    assert source.newest_sample_time("production", at + timedelta(minutes=2)) == at
    assert source.newest_sample_time("production", at - timedelta(hours=3)) is None
    assert source.newest_sample_time("nowhere", at) is None


def test_naive_times_are_read_as_utc(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    naive = backfilled_prometheus.at.replace(tzinfo=None)
    assert source.newest_sample_time("production", naive) == backfilled_prometheus.at


def test_hostile_flag_key_is_a_literal_not_promql(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus
) -> None:
    frame = source.evaluation_rates(
        "production", WINDOW, backfilled_prometheus.at, flag=HOSTILE_FLAG
    )

    assert frame.empty
    assert tuple(frame.columns) == EVALUATION_RATE_COLUMNS
    (query,) = source.issued
    assert 'flag="x\\"}) or vector(1)"' in query
    assert 'x"})' not in query  # every quote of the value is escaped


@pytest.mark.parametrize(
    "environment",
    [
        'production"} or feature_flag_evaluations_total{environment="staging',
        'production", flag=~".+',
        "production\\",
        "production\n",
        ".*",
    ],
)
def test_hostile_environment_cannot_change_results(
    source: PrometheusMetrics, backfilled_prometheus: BackfilledPrometheus, environment: str
) -> None:
    at = backfilled_prometheus.at
    assert source.evaluation_rates(environment, WINDOW, at).empty
    assert source.error_rates(environment, WINDOW, at).empty
    assert source.latency_quantiles(environment, WINDOW, at).empty
    assert source.newest_sample_time(environment, at) is None


def _read_back(client: PrometheusConnect, value: str, at: datetime) -> str:
    # A bare string literal is a valid query; Prometheus answers [time, "value"].
    result = client.custom_query(promql_string(value), params={"time": at.timestamp()})
    return str(result[1])


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
def test_prometheus_reads_escaped_literals_back_exactly(
    backfilled_prometheus: BackfilledPrometheus, value: str
) -> None:
    client = PrometheusConnect(backfilled_prometheus.url)
    assert _read_back(client, value, backfilled_prometheus.at) == value


def test_prometheus_reads_escaped_label_values_back_exactly(
    backfilled_prometheus: BackfilledPrometheus,
) -> None:
    # The same literals as label values: label_replace sets them, a matcher finds them.
    client = PrometheusConnect(backfilled_prometheus.url)
    for value in [v for v in HOSTILE_STRINGS if v and "$" not in v]:
        literal = promql_string(value)
        query = (
            f'label_replace(vector(1), "x", {literal}, "", "")'
            f' and on (x) label_replace(vector(1), "x", {literal}, "", "")'
        )
        result = client.custom_query(query, params={"time": backfilled_prometheus.at.timestamp()})
        assert [series["metric"]["x"] for series in result] == [value]


@settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_prometheus_reads_any_escaped_string_back(
    backfilled_prometheus: BackfilledPrometheus, value: str
) -> None:
    client = PrometheusConnect(backfilled_prometheus.url)
    assert _read_back(client, value, backfilled_prometheus.at) == value


def test_closed_port_is_source_unavailable() -> None:
    port = free_port()
    source = PrometheusMetrics(
        f"http://admin:s3cret@127.0.0.1:{port}", timeout_seconds=1.0, retries=0
    )
    with pytest.raises(SourceUnavailable) as raised:
        source.evaluation_rates("production", WINDOW, datetime(2026, 1, 1, tzinfo=UTC))
    assert raised.value.source == "prometheus"
    assert "s3cret" not in str(raised.value)
    assert "admin" not in str(raised.value)
    assert f"127.0.0.1:{port}" in raised.value.detail


def test_http_error_reply_is_source_unavailable(
    backfilled_prometheus: BackfilledPrometheus,
) -> None:
    source = PrometheusMetrics(f"{backfilled_prometheus.url}/no/such/prefix")
    with pytest.raises(SourceUnavailable, match="HTTP 404"):
        source.newest_sample_time("production", backfilled_prometheus.at)


def _serve(status: int, content_type: str, body: bytes) -> tuple[http.server.HTTPServer, str]:
    """A stand-in server that answers every GET with the same reply."""

    class Reply(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Reply)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "detail"),
    [
        (200, "text/html", b"<html>a proxy login page</html>", "bad reply"),
        (200, "application/json", b'{"status": "success"}', "unexpected reply"),
        (503, "text/plain", b"overloaded", "bad reply"),
        (
            422,
            "application/json",
            b'{"status":"error","errorType":"execution","error":"query timed out"}',
            "HTTP 422: query timed out",
        ),
    ],
)
def test_bad_replies_are_source_unavailable(
    status: int, content_type: str, body: bytes, detail: str
) -> None:
    server, url = _serve(status, content_type, body)
    try:
        source = PrometheusMetrics(url, retries=1)
        with pytest.raises(SourceUnavailable) as raised:
            source.error_rates("production", WINDOW, datetime(2026, 1, 1, tzinfo=UTC))
        assert raised.value.detail.startswith(detail)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_silent_server_is_source_unavailable_after_the_timeout(silent_server: str) -> None:
    source = PrometheusMetrics(silent_server, timeout_seconds=0.5)
    with pytest.raises(SourceUnavailable, match=r"no answer within 0\.5s"):
        source.newest_sample_time("production", datetime(2026, 1, 1, tzinfo=UTC))


def test_usage_preset_reads_data_written_with_its_names(tmp_path: Path) -> None:
    names = PRESETS[MetricPreset.USAGE]
    end = datetime(2026, 1, 1, tzinfo=UTC)
    text = openmetrics_from_rollups(reference_rollups(end, hours=0.25), names=names)
    assert "feature_flag_usage_total{flag_name=" in text
    assert "# TYPE feature_flag_usage counter" in text
    server = start_prometheus(text, tmp_path)
    try:
        source = PrometheusMetrics(server.url, names=names)
        frame = source.evaluation_rates("production", WINDOW, end)
        assert _rates(frame) == {
            flag: {variant: pytest.approx(rate, rel=1e-6) for variant, rate in variants.items()}
            for flag, variants in EXPECTED_EVALUATION_RATES["production"].items()
        }
        assert "sum by (flag_name, enabled)" in source.issued[0]
        # the preset has no error counter and no histogram: no query, empty frames
        assert source.error_rates("production", WINDOW, end).empty
        assert source.latency_quantiles("production", WINDOW, end).empty
        assert len(source.issued) == 1
        sparks = source.evaluation_sparklines(
            "production", end - timedelta(minutes=5), end, timedelta(seconds=60)
        )
        assert set(sparks["flag"]) == {"alpha", "beta"}
        assert source.newest_sample_time("production", end) == end
    finally:
        server.stop()
