"""With recording rules deployed, the overview reads the recorded series (one cheap query
per question) and falls back to the raw expressions where they are absent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.analysis.health import HealthThresholds
from app.flags.loader import load_config
from app.services.overview import FlagRow, load_overview
from queries.audit import LAST_CHANGE_COLUMNS
from queries.frames import empty_frame
from queries.prometheus import (
    RECORDED_BUCKETS,
    RECORDED_ERRORS,
    RECORDED_EVALUATIONS,
    RECORDED_QUANTILES,
    RECORDED_REASONS,
    RECORDED_SPARKLINE,
    PrometheusMetrics,
)
from tests.integration.conftest import REFERENCE_END
from tests.support.prometheus import (
    PrometheusProcess,
    openmetrics_from_rollups,
    start_prometheus,
    with_recorded_series,
)
from tests.support.workload import (
    EXPECTED_ERROR_RATES,
    EXPECTED_EVALUATION_RATES,
    EXPECTED_LATENCY_QUANTILES,
    reference_rollups,
)

pytestmark = pytest.mark.prometheus
WINDOW = timedelta(minutes=5)
#: the recorded series hold these values (production only), twice the raw ones, so a
#: test can tell which series answered
RECORDED = {
    RECORDED_EVALUATIONS: [({"flag": "alpha", "variant": "on"}, 2 * 10 / 15)],
    RECORDED_ERRORS: [({"flag": "alpha"}, 2 * 1 / 15)],
}


def _recorded_text(end_seconds: float) -> str:
    lines = []
    for name, series in RECORDED.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, value in series:
            text = ",".join(
                f'{k}="{v}"' for k, v in {**labels, "environment": "production"}.items()
            )
            for step in range(40, -1, -1):
                lines.append(f"{name}{{{text}}} {value} {end_seconds - 15 * step:.0f}")
    # all latency observations of alpha in the (0.0005, 0.001] bucket: p50 = 0.00075
    lines.append(f"# TYPE {RECORDED_BUCKETS} gauge")
    for le, value in (("0.0005", 0.0), ("0.001", 1.0), ("+Inf", 1.0)):
        labels = f'environment="production",flag="alpha",le="{le}"'
        for step in range(40, -1, -1):
            lines.append(f"{RECORDED_BUCKETS}{{{labels}}} {value} {end_seconds - 15 * step:.0f}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    raw = openmetrics_from_rollups(reference_rollups(REFERENCE_END, hours=1.0))
    text = raw.replace("# EOF", _recorded_text(REFERENCE_END.timestamp()) + "# EOF")
    server = start_prometheus(text, Path(tmp_path_factory.mktemp("recorded")))
    yield server
    server.stop()


def test_recorded_series_answer_first_in_one_query_each(prometheus):
    source = PrometheusMetrics(prometheus.url, recorded=True)
    rates = source.evaluation_rates("production", WINDOW, REFERENCE_END)
    errors = source.error_rates("production", WINDOW, REFERENCE_END)
    latency = source.latency_quantiles("production", WINDOW, REFERENCE_END, (0.5,))
    assert rates.to_dict("records") == [
        {"flag": "alpha", "variant": "on", "evaluations_per_second": pytest.approx(20 / 15)}
    ]
    assert errors.to_dict("records") == [
        {"flag": "alpha", "errors_per_second": pytest.approx(2 / 15)}
    ]
    assert latency.to_dict("records") == [
        {"flag": "alpha", "quantile": 0.5, "seconds": pytest.approx(0.00075)}
    ]
    # the recorded quantiles are not in this Prometheus: the recorded buckets answer next
    assert len(source.issued) == 4
    assert RECORDED_EVALUATIONS in source.issued[0] and "rate(" not in source.issued[0]
    assert source.issued[2] == f'{RECORDED_QUANTILES}{{environment="production"}}'
    assert RECORDED_BUCKETS in source.issued[3] and "rate(" not in source.issued[3]


def test_absent_recorded_series_fall_back_to_the_raw_expressions(prometheus):
    source = PrometheusMetrics(prometheus.url, recorded=True)
    rates = source.evaluation_rates("staging", WINDOW, REFERENCE_END)
    got = {(r["flag"], r["variant"]): r["evaluations_per_second"] for r in rates.to_dict("records")}
    expected = {
        (flag, variant): rate
        for flag, variants in EXPECTED_EVALUATION_RATES["staging"].items()
        for variant, rate in variants.items()
    }
    assert got == pytest.approx(expected)
    assert len(source.issued) == 2  # the recorded query (empty), then the raw one
    assert RECORDED_EVALUATIONS in source.issued[0] and "rate(" in source.issued[1]


def test_without_the_setting_or_off_their_window_the_raw_expressions_answer(prometheus):
    plain = PrometheusMetrics(prometheus.url)
    errors = plain.error_rates("production", WINDOW, REFERENCE_END).set_index("flag")
    assert errors.loc["alpha", "errors_per_second"] == pytest.approx(
        EXPECTED_ERROR_RATES["production"]["alpha"]
    )
    assert len(plain.issued) == 1 and RECORDED_ERRORS not in plain.issued[0]
    recorded = PrometheusMetrics(prometheus.url, recorded=True)
    latency = recorded.latency_quantiles("production", timedelta(minutes=10), REFERENCE_END)
    p99 = latency.set_index(["flag", "quantile"]).loc[("alpha", 0.99), "seconds"]
    assert p99 == pytest.approx(EXPECTED_LATENCY_QUANTILES["production"]["alpha"][0.99])
    assert len(recorded.issued) == 1 and RECORDED_BUCKETS not in recorded.issued[0]


RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rollout.rules.yml"
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    default_variant: "off"
    variants: {"on": true, "off": false}
    rollout: {percentage: 50, variant: "on"}
    metadata: {phase: 1}
  beta:
    state: enabled
    variants: {"on": true, "off": false}
    default_variant: "on"
    metadata: {phase: 2}
"""


@pytest.fixture(scope="module")
def ruled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    """The reference workload with the shipped rules' series written by promtool as a
    running Prometheus would have recorded them, every minute of the last 40."""
    workdir = Path(tmp_path_factory.mktemp("ruled"))
    server = start_prometheus(
        openmetrics_from_rollups(reference_rollups(REFERENCE_END, hours=1.0)), workdir
    )
    server = with_recorded_series(
        server, workdir, RULES, REFERENCE_END - timedelta(minutes=40), REFERENCE_END
    )
    yield server
    server.stop()


def _shown(row: FlagRow) -> dict[str, object]:
    numbers = {
        "rate": row.evaluations_per_second,
        "errors": row.error_rate,
        "p50": row.p50_seconds,
        "p99": row.p99_seconds,
        **{f"share {v}": share for v, share in row.variants.items()},
        **{f"trend {i}": value for i, value in enumerate(row.sparkline)},
    }
    return {"flag": row.flag, "health": row.health, "why": row.why, **numbers}


def test_the_overview_from_the_shipped_rules_equals_the_raw_one(ruled, tmp_path):
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    config = load_config(tmp_path / "feature_flags.yaml", "production")
    loaded = {}
    for recorded in (False, True):
        source = PrometheusMetrics(ruled.url, recorded=recorded)
        loaded[recorded] = (
            source,
            load_overview(
                config=config,
                environment="production",
                sources=[source],
                changes=empty_frame(LAST_CHANGE_COLUMNS),
                thresholds=HealthThresholds(),
                window=WINDOW,
                sparkline_span=timedelta(minutes=30),
                at=REFERENCE_END,
                recent=timedelta(hours=1),
            ),
        )
    (raw_source, raw), (source, overview) = loaded[False], loaded[True]
    # six questions: the rates, quantiles and trend answered by their recorded series
    # (an empty one would have added the raw query); the errors and the counts by reason
    # are the guards' slot questions on the raw counters (one grid, one definition of a
    # failure: issue 21), and the newest sample's time is the raw series'
    assert overview.queries == raw.queries == 6 == len(source.issued)
    recorded_names = (RECORDED_EVALUATIONS, RECORDED_QUANTILES, RECORDED_SPARKLINE)
    for name in recorded_names:
        (query,) = [q for q in source.issued if name in q]
        assert "rate(" not in query and "increase(" not in query
    raw_questions = [q for q in source.issued if not any(n in q for n in recorded_names)]
    newest = 'max(timestamp(feature_flag_evaluations_total{environment="production"}))'
    assert raw_questions[-1] == newest
    assert len(raw_questions) == 3 and all(" offset 30s" in q for q in raw_questions[:2])
    unused = (RECORDED_ERRORS, RECORDED_REASONS)
    assert not any(name in q for q in source.issued for name in unused)
    assert not any(name in q for q in raw_source.issued for name in recorded_names)
    # the same numbers as the raw expressions on the same data, the ones the workload set
    assert overview.newest_sample == raw.newest_sample
    alpha, beta = sorted(overview.rows, key=lambda row: row.flag)
    assert alpha.evaluations_per_second == pytest.approx(15 / 15)
    assert alpha.error_rate == pytest.approx(1 / 15)
    assert alpha.p99_seconds == pytest.approx(
        EXPECTED_LATENCY_QUANTILES["production"]["alpha"][0.99]
    )
    assert alpha.sparkline == pytest.approx((1.0,) * 31)
    assert alpha.why == "errors 6.67 % > 5 %"
    assert beta.p50_seconds == pytest.approx(EXPECTED_LATENCY_QUANTILES["production"]["beta"][0.5])
    for ours, theirs in zip(overview.rows, raw.rows, strict=True):
        shown, expected = _shown(ours), _shown(theirs)
        assert shown.keys() == expected.keys()
        assert shown == {
            key: pytest.approx(value) if isinstance(value, float) else value
            for key, value in expected.items()
        }
