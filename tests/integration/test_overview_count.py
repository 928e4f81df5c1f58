"""The overview counts the flags its filters show against all of them (issue 24)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.integration.test_pages import ENTRY_POINT, seeded

__all__ = ["seeded"]  # the fixture, used by name


def _source_line(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Source:"))


def test_a_filter_showing_one_of_two_flags_says_1_of_2(seeded):
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30).run()
    assert not at.exception
    assert _source_line(at).endswith("· 2 flags")
    at.text_input[0].set_value("beta").run()
    assert len(at.dataframe[0].value) == 1
    assert _source_line(at).endswith("· 1 of 2 flags")
    at.text_input[0].set_value("").run()
    assert _source_line(at).endswith("· 2 flags")
