"""What an action accepts: the rules every caller (page, CLI, script) gets the same."""

from __future__ import annotations

import pytest

from app.rollout.inputs import (
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    actor_problem,
    environment_problem,
    flag_key_problem,
    reason_problem,
)


def test_a_reason_up_to_the_limit_with_lines_and_tabs_is_accepted():
    assert reason_problem("x" * MAX_REASON_LENGTH) is None
    assert reason_problem("first\n\tsecond\r\nthird") is None
    assert reason_problem("  padded  " + " " * 5000) is None  # the limit counts what is kept
    assert reason_problem("x'; DROP TABLE audit_log; --") is None  # stored literally


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("", "a reason is required"),
        (" \n\t", "a reason is required"),
        ("x" * 2001, "the reason is 2,001 characters long; the limit is 2,000."),
        ("a\x00b", "the reason contains the control character U+0000 at position 2"),
        ("\x1b[2J", "U+001B at position 1: only printable text, tabs and line breaks"),
        ("ok \u202e", "U+202E at position 4"),
        ("ok \u2067", "U+2067"),
    ],
)
def test_a_bad_reason_is_named(reason, problem):
    found = reason_problem(reason)
    assert found is not None and problem in found


def test_names_are_one_printable_line_of_at_most_200_characters():
    assert actor_problem("olga@example.com") is None
    assert flag_key_problem("a" * MAX_NAME_LENGTH) is None
    assert flag_key_problem("ab\u200btesting") is None  # not a control: just no such flag
    assert actor_problem("") == "the actor name is empty"
    assert flag_key_problem("a" * 201) == "the flag key is 201 characters long; the limit is 200"
    assert "U+000A at position 4: only printable text is allowed" in (actor_problem("bob\n") or "")


def test_an_environment_is_a_plain_name():
    assert environment_problem("staging-eu_1") is None
    assert environment_problem("../x") == (
        "the environment name '../x' is not a plain name (letters, digits, _, -)"
    )
    assert "not a plain name" in (environment_problem("ｐｒｏｄ") or "")
    assert "U+0000" in (environment_problem("a\x00") or "")
