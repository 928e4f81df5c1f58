"""Values from a link are checked against what a widget offers; the rest is named."""

from __future__ import annotations

from enum import StrEnum

from app.quoting import printable
from app.text import SOURCE_LABELS, escape_markdown, source_label
from app.ui.url_params import (
    MAX_TEXT,
    choice_from_link,
    choices_from_link,
    text_from_link,
)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


ENVIRONMENTS = ["production", "staging"]


def test_a_choice_offered_is_taken_without_a_note():
    start = choice_from_link("env", ["staging"], ENVIRONMENTS, "production")
    assert start.value == "staging" and start.ignored == ()


def test_no_value_in_the_link_gives_the_default_silently():
    start = choice_from_link("env", [], ENVIRONMENTS, "production")
    assert start.value == "production" and start.ignored == ()


def test_an_unknown_choice_gives_the_default_and_names_what_was_ignored():
    start = choice_from_link("env", ["nonexistent"], ENVIRONMENTS, "production")
    assert start.value == "production"
    assert start.ignored == ("env=nonexistent: not one of production, staging",)


def test_repeated_keys_keep_the_last_valid_and_name_the_others():
    start = choice_from_link("env", ["staging", "a", "production"], ENVIRONMENTS, None)
    assert start.value == "production"
    assert len(start.ignored) == 2
    assert start.ignored[0].startswith("env=staging: given more than once")
    assert start.ignored[1] == "env=a: not offered"


def test_choices_are_matched_by_their_text():
    assert choice_from_link("c", ["blue"], list(Colour), None).value is Colour.BLUE
    assert choice_from_link("n", ["3"], [1, 2, 3], None).value == 3


def test_a_list_keeps_the_offered_parts_in_the_options_order():
    start = choices_from_link("phase", ["3,1,1"], [1, 2, 3, 4, 5, 6])
    assert start.value == [1, 3] and start.ignored == ()


def test_a_list_drops_out_of_range_and_garbage_with_a_note_each():
    start = choices_from_link("phase", ["7,0,abc,2", "99"], [1, 2, 3, 4, 5, 6])
    assert start.value == [2]
    assert [note.split(":")[0] for note in start.ignored] == [
        "phase=7",
        "phase=0",
        "phase=abc",
        "phase=99",
    ]
    assert "not one of 1, 2, 3, 4, 5, 6" in start.ignored[0]


def test_a_list_of_enum_values():
    start = choices_from_link("state", ["red,green"], list(Colour))
    assert start.value == [Colour.RED] and len(start.ignored) == 1


def test_text_is_taken_as_given_injection_included():
    hostile = 'x"}) or vector(1)'
    assert text_from_link("q", [hostile]).value == hostile
    assert text_from_link("q", []).value == ""


def test_long_text_is_cut_with_a_note():
    start = text_from_link("q", ["a" * 5000])
    assert start.value == "a" * MAX_TEXT
    assert start.ignored == (f"q: cut to its first {MAX_TEXT} of 5000 characters",)


def test_repeated_text_keeps_the_last():
    start = text_from_link("q", ["one", "two"])
    assert start.value == "two"
    assert start.ignored == ("q=one: given more than once, kept the last",)


def test_a_long_value_is_quoted_short():
    assert printable("abc") == "abc"
    assert printable("x" * 5000) == "x" * 40 + "… (5000 characters)"
    start = choice_from_link("env", ["y" * 5000], ENVIRONMENTS, "production")
    assert len(start.ignored[0]) < 120


def test_many_choices_are_listed_short():
    start = choice_from_link("flag", ["nope"], [f"f{i}" for i in range(30)], None)
    assert start.ignored[0].endswith("f11 and 18 more")


def test_markdown_escaping_leaves_no_markup():
    escaped = escape_markdown("<script>alert(1)</script> **b** $x$ :red[y]\nz")
    for special in "<>*$[]":
        assert f"\\{special}" in escaped
        assert escaped.count(special) == escaped.count(f"\\{special}")
    assert "\n" not in escaped


def test_one_label_per_source():
    assert source_label("prometheus") == SOURCE_LABELS["prometheus"] == "Prometheus (live)"
    assert source_label("sql") == "metrics database roll-ups"
    assert source_label(None) == source_label("elsewhere") == "no source"


def test_control_characters_in_a_link_are_removed_and_named():
    start = text_from_link("q", ["ab\x00c\x1b"])
    assert start.value == "abc"
    assert start.ignored == ("q: 2 control character(s) removed",)
    assert printable("a\x00") == "a\\x00"
