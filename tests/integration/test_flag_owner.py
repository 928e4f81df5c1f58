"""Flag detail names the flag's owner and, for a flag in Unleash, links to it there."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.metrics_db.database import open_database
from app.unleash.mapping import feature_ui_url
from tests.support.bundled import copy_bundled_config

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    copy_bundled_config(tmp_path)
    open_database(f"sqlite:///{tmp_path / 'metrics.db'}").dispose()
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _detail(flag: str) -> AppTest:
    app = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    app.query_params.update({"flag": flag, "refresh": "off"})
    at = app.switch_page("../pages/flag_detail.py").run()
    assert not at.exception, at.exception
    return at


def _owner_line(at: AppTest) -> str:
    lines = (str(m.value).replace("\\", "") for m in at.markdown)
    return next(line for line in lines if line.startswith("Owner:"))


def test_the_owner_from_the_seed_metadata_is_named(bundled):
    assert _owner_line(_detail("phase1_config_externalization")) == "Owner: **platform-team**"
    assert _owner_line(_detail("phase2_health_checks")) == "Owner: **sre-team**"


def test_a_flag_without_an_owner_says_where_to_set_it(bundled):
    line = _owner_line(_detail("phase1_pydantic_settings"))
    assert line == "Owner: not set (`metadata.owner` in the flag config)"
    assert "Unleash" not in line  # a YAML flag has no flag server to link to


def test_the_unleash_ui_address_of_a_feature() -> None:
    assert (
        feature_ui_url("http://127.0.0.1:4242/", "default", "new_checkout")
        == "http://127.0.0.1:4242/projects/default/features/new_checkout"
    )
    assert feature_ui_url("https://unleash.example/u", "p 1", "a/b").endswith(
        "/u/projects/p%201/features/a%2Fb"
    )


@pytest.mark.unleash
def test_a_flag_in_unleash_links_to_its_page_in_the_unleash_ui(
    unleash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> None:
    unleash.create("checkout", rollout=5)
    server = unleash.server
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_FLAG_BACKEND", "unleash")
    monkeypatch.setenv("ROLLOUT_UNLEASH_URL", server.url)
    monkeypatch.setenv("ROLLOUT_UNLEASH_TOKEN", server.admin_token)
    st.cache_resource.clear()
    try:
        line = _owner_line(_detail("checkout"))
    finally:
        st.cache_resource.clear()
    url = f"{server.url.rstrip('/')}/projects/default/features/checkout"
    owner = "Owner: not set (`metadata.owner` in the flag config)"
    assert line == f"{owner} · [Open checkout in Unleash ↗]({url})"
    assert server.admin_token not in line
    with urllib.request.urlopen(url, timeout=30) as answer:  # the UI serves that page
        assert answer.status == 200
