"""Hostile links (query parameters) on every page, as Streamlit's AppTest runs them: the
page draws, never an exception box; each value that cannot be used is named in a note
("Ignored from the link: …", "No audit record #…"), quoted at most 40 characters long;
free text from the link filters literally; and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.security.untouched import make_state, unchanged

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
SCRIPT = "<script>alert(1)</script>"
SQL = "x'; DROP TABLE audit_log; --"
PROMQL = 'ab_testing"}) or vector(1)'
LONG = "z" * 10_000
LONG_SHOWN = f"{'z' * 40}… (10000 characters)"
IGNORED = "Ignored from the link: "


@pytest.fixture
def state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Iterator[Path]:
    make_state(tmp_path)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ROLLOUT_DEMO", "true")  # the local operator sees the kill switch
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def open_page(page: str | None, params: dict[str, str | list[str]]) -> AppTest:
    """The app opened on `page` (None: the overview) from a link carrying `params`."""
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    if page is None:
        for name, value in params.items():
            at.query_params[name] = value
        at.run()
    else:
        at.run()
        for name, value in params.items():
            at.query_params[name] = value
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def said(at: AppTest) -> str:
    """Every note, warning, error and caption on the page, as a person reads it (the
    markdown escapes removed)."""
    texts = [e.value for group in (at.warning, at.error, at.info, at.caption) for e in group]
    return "\n".join(texts).replace("\\", "")


OVERVIEW = {
    "script in env": ({"env": SCRIPT}, f"{IGNORED}env={SCRIPT}: not one of production, staging"),
    "phase abc": ({"phase": "abc"}, f"{IGNORED}phase=abc: not one of 1, 2, 3, 4, 5, 6"),
    "phase -1": ({"phase": "-1"}, f"{IGNORED}phase=-1: not one of 1, 2, 3, 4, 5, 6"),
    "phase 99": ({"phase": "99"}, f"{IGNORED}phase=99: not one of 1, 2, 3, 4, 5, 6"),
    "env 10,000 characters": ({"env": LONG}, f"{IGNORED}env={LONG_SHOWN}: not one of"),
    "search 10,000 characters": ({"q": LONG}, f"{IGNORED}q: cut to its first 200 of 10000"),
    "env repeated": (
        {"env": ["staging", "nope", "staging"]},
        f"{IGNORED}env=nope: not offered",
    ),
    "env in full-width letters": (
        {"env": "ｓｔａｇｉｎｇ"},
        f"{IGNORED}env=ｓｔａｇｉｎｇ: not one of",
    ),
    "env with a Cyrillic a": ({"env": "st\u0430ging"}, f"{IGNORED}env=st\u0430ging: not one of"),
    "NUL in the search": ({"q": "ab\x00"}, f"{IGNORED}q: 1 control character(s) removed"),
    "percent garbage in health": ({"health": "%ZZ%00"}, f"{IGNORED}health=%ZZ%00: not one of"),
    "PromQL in state": ({"state": PROMQL}, f"{IGNORED}state={PROMQL}: not one of"),
}


@pytest.mark.parametrize(("params", "note"), OVERVIEW.values(), ids=OVERVIEW.keys())
def test_the_overview_names_what_it_ignored_and_keeps_the_kill_switch(state, params, note):
    untouched = unchanged(state)
    at = open_page(None, params)
    assert note in said(at)
    assert "🚨 Emergency rollback" in [b.label for b in at.button]
    assert "Source: " in said(at)  # the flag table's panel drew
    untouched()


def test_a_search_from_the_link_filters_literally(state):
    untouched = unchanged(state)
    at = open_page(None, {"q": PROMQL})
    assert "No flag matches these filters." in said(at)  # no flag matched, none injected
    at = open_page(None, {"q": "ab_"})
    shown = list(at.dataframe[0].value["Flag"])
    assert len(shown) == 1 and shown[0].endswith("flag=ab_testing")  # "_" is not a wildcard
    untouched()


FLAG_DETAIL = {
    "flag as a path": ({"flag": "../../etc/passwd"}, "no flag ../../etc/passwd in production"),
    "flag that does not exist": ({"flag": "nope"}, "no flag nope in production"),
    "flag 10,000 characters": ({"flag": LONG}, f"no flag {LONG_SHOWN} in production"),
    "flag with NUL": ({"flag": "ab_testing\x00"}, "no flag ab_testing\\x00 in production"),
    "flag with a Cyrillic a": ({"flag": "\u0430b_testing"}, "no flag \u0430b_testing in"),
    "flag with PromQL": ({"flag": PROMQL}, f"no flag {PROMQL} in production"),
    "range 99d": ({"flag": "ab_testing", "range": "99d"}, "range=99d: not one of 15m, 1h"),
    "refresh -1": ({"flag": "ab_testing", "refresh": "-1"}, "refresh=-1: not one of"),
}


@pytest.mark.parametrize(("params", "note"), FLAG_DETAIL.values(), ids=FLAG_DETAIL.keys())
def test_flag_detail_names_the_unknown_flag_and_shows_no_other(state, params, note):
    untouched = unchanged(state)
    at = open_page("flag_detail", params)
    assert note.replace("\\", "") in said(at)
    headings = [h.value for h in at.subheader]
    if params["flag"] == "ab_testing":
        assert headings[0] == "ab_testing"
    else:
        assert headings == []  # never another flag than the one named
        assert not [b for b in at.button if "Kill" in b.label]
    untouched()


OTHER_PAGES = {
    "canary window 99999d": ("canary", {"window": "99999d"}, "window=99999d: not one of 15m"),
    "canary window -1h": ("canary", {"window": "-1h"}, "window=-1h: not one of"),
    "canary window 0": ("canary", {"window": "0"}, "window=0: not one of"),
    "canary env with SQL": ("canary", {"env": SQL}, f"env={SQL}: not one of"),
    "phases env script": ("phases", {"env": SCRIPT}, f"env={SCRIPT}: not one of"),
    "phases env NUL": ("phases", {"env": "\x00"}, "env=\\x00: not one of"),
    "audit outcome hacked": ("audit", {"outcome": "hacked"}, "outcome=hacked: not one of"),
    "audit id superscript": ("audit", {"id": "²"}, "No audit record #²."),
    "audit id SQL": ("audit", {"id": "1 OR 1=1"}, "No audit record #1 OR 1=1."),
    "audit id 10,000 characters": ("audit", {"id": LONG}, f"No audit record #{LONG_SHOWN}."),
    "audit id markdown": ("audit", {"id": "**[x](javascript:1)**"}, "#**[x](javascript:1)**"),
}


@pytest.mark.parametrize(("page", "params", "note"), OTHER_PAGES.values(), ids=OTHER_PAGES.keys())
def test_every_other_page_names_what_it_ignored(state, page, params, note):
    untouched = unchanged(state)
    at = open_page(page, params)
    assert note.replace("\\", "") in said(at)
    untouched()


AUDIT_FILTERS = {
    "SQL in actor": {"actor": SQL},
    "PromQL in flag": {"flag": PROMQL},
    "LIKE wildcard in actor": {"actor": "%"},
    "LIKE wildcard in flag": {"flag": "canary_%"},
}


@pytest.mark.parametrize("params", AUDIT_FILTERS.values(), ids=AUDIT_FILTERS.keys())
def test_audit_filters_from_the_link_are_literal_and_the_log_survives(state, params):
    untouched = unchanged(state)
    at = open_page("audit", params)
    assert "0 record(s), newest first" in said(at)
    untouched()
    at = open_page("audit", {})
    assert "1 record(s), newest first" in said(at)  # olga's rollback is still there
