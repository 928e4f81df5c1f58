"""The overview page (AppTest) on a real emitter's metrics: what it says about them."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support.openfeature import OpenFeatureScrape

pytestmark = pytest.mark.prometheus

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
FLAGS = """
version: "1"
flags:
  new_checkout:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 25}
  dark_mode:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 50}
"""


@pytest.fixture
def pointed(
    openfeature_scrape: OpenFeatureScrape,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_rollout_environment: None,
) -> Iterator[pytest.MonkeyPatch]:
    """The dashboard's settings pointing at the session's Prometheus, two environments."""
    (tmp_path / "feature_flags.yaml").write_text(textwrap.dedent(FLAGS).lstrip("\n"))
    (tmp_path / "feature_flags_staging.yaml").write_text("flags: {}\n")
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", openfeature_scrape.prometheus.url)
    monkeypatch.setenv("ROLLOUT_RATE_WINDOW_SECONDS", "15")
    # scraped every second: the errors are counted on 1 s slots of the last 15 s
    monkeypatch.setenv("ROLLOUT_EVIDENCE_SLOT_SECONDS", "1")
    st.cache_resource.clear()
    yield monkeypatch
    st.cache_resource.clear()


def _text(at: AppTest) -> str:
    return " ".join(c.value for c in [*at.caption, *at.warning, *at.markdown])


def test_the_openfeature_overview_says_what_the_emitter_cannot_tell(
    pointed: pytest.MonkeyPatch,
) -> None:
    pointed.setenv("ROLLOUT_METRIC_PRESET", "openfeature")
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30).run()
    assert not at.exception
    text = _text(at)
    assert "the `deployment_environment_name` label of `target_info`" in text
    assert "Latency: not available from this emitter" in text
    assert "the advance guard fails closed by policy" in text
    assert at.selectbox(key="overview.env").options == ["production", "staging"]
    frame = at.dataframe[0].value
    errors = dict(zip(frame["Flag"].str.rsplit("=", n=1).str[-1], frame["Errors"], strict=True))
    assert errors == {"new_checkout": "10.00 %", "dark_mode": "0.00 %"}


def test_the_unleash_preset_offers_one_environment_and_says_why(
    pointed: pytest.MonkeyPatch,
) -> None:
    pointed.setenv("ROLLOUT_METRIC_PRESET", "unleash")
    pointed.setenv("ROLLOUT_GUARD_WITHOUT_EVIDENCE", "pass")
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30).run()
    assert not at.exception
    assert at.selectbox(key="overview.env").options == ["production"]
    text = _text(at)
    assert "Single-environment mode: `feature_toggle_usage_total` carries no environment" in text
    assert "No variant label: the split shown is `active` true/false" in text
    assert "passes by policy" in text and "fails closed" not in text
    # this Prometheus scrapes no Unleash: the page says it found nothing, and why not more
    assert "no series of feature_toggle_usage_total at all (single-environment mode" in text
