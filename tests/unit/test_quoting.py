"""How untrusted text appears inside a message: one line, short, nothing a terminal or
a page would act on."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from app.quoting import printable, quoted


def test_a_quoted_value_is_short_and_shows_its_control_characters():
    assert printable("a\x1b[31m\x00") == "a\\x1b[31m\\x00"
    assert quoted("z" * 41) == f"'{'z' * 40}… (41 characters)'"
    assert quoted(1e309) == "inf" and quoted(5) == "5"


def test_a_right_to_left_override_is_shown_not_obeyed():
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"


def test_where_only_ascii_is_valid_a_look_alike_letter_shows_for_what_it_is():
    assert quoted("m\u0430in", ascii_only=True) == "'m\\u0430in'"
    assert quoted("José") == "'José'"  # free text keeps its letters


@given(st.text())
def test_printable_never_lets_a_control_or_format_character_through(text):
    shown = printable(text)
    assert len(shown) <= 6 * 40 + 30
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in shown)
