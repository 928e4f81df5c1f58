"""Targeting conditions: the seed's examples work, everything off the allow-list is refused."""

from __future__ import annotations

from typing import Any

import pytest

from app.flags.conditions import MAX_CONDITION_LENGTH, ConditionError, parse_condition


def _context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "user_id": "u1",
        "user_type": "developer",
        "environment": "development",
        "custom_attributes": {},
    }
    context.update(overrides)
    return context


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("user_type == 'admin'", _context(user_type="admin"), True),
        ("user_type == 'admin'", _context(user_type="developer"), False),
        (
            "custom_attributes.get('beta_user') == True",
            _context(custom_attributes={"beta_user": True}),
            True,
        ),
        ("custom_attributes.get('beta_user') == True", _context(), False),
        (
            "environment in ['staging', 'production'] and user_type != 'bot'",
            _context(environment="staging", user_type="developer"),
            True,
        ),
        (
            "environment in ['staging', 'production'] and user_type != 'bot'",
            _context(environment="staging", user_type="bot"),
            False,
        ),
        (
            "environment in ['staging', 'production'] and user_type != 'bot'",
            _context(environment="development"),
            False,
        ),
    ],
)
def test_seed_examples(text: str, context: dict[str, Any], expected: bool) -> None:
    assert parse_condition(text)(context) is expected


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("not user_type == 'admin'", _context(), True),
        ("user_type == 'admin' or user_id == 'u1'", _context(), True),
        ("1 < custom_attributes.get('age', 0) <= 3", _context(custom_attributes={"age": 3}), True),
        ("1 < custom_attributes.get('age', 0) <= 3", _context(custom_attributes={"age": 4}), False),
        ("custom_attributes.get('plan', 'free') == 'free'", _context(), True),
        ("user_id not in ('u2', 'u3')", _context(), True),
        ("user_type in {'developer'}", _context(), True),
        # An unknown name is None, and None compared with a number is simply no match.
        ("unknown_name < 3", _context(), False),
        ("unknown_name == None", _context(), True),
        ("user_type in 5", _context(), False),
        ("custom_attributes.get('x') == 1", _context(custom_attributes="not a mapping"), False),
    ],
)
def test_allowed_constructs(text: str, context: dict[str, Any], expected: bool) -> None:
    assert parse_condition(text)(context) is expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("__import__('os').system('x')", "function call '__import__('os').system'"),
        ("open('f')", "function call 'open'"),
        ("user_type.__class__", "attribute access 'user_type.__class__'"),
        ("lambda: 1", "lambda"),
        ("[x for x in y]", "list comprehension"),
        ("custom_attributes.pop('a')", "function call 'custom_attributes.pop'"),
        ("f'{user_type}' == 'admin'", "f-string"),
        ("(x := 1)", "assignment expression"),
        ("custom_attributes['a'] == 1", "subscript"),
        ("custom_attributes.get(user_type)", "must be a constant"),
        ("custom_attributes.get('a', default=1)", "constant key"),
        ("user_id is None", "comparison 'is'"),
        ("1 + 1 == 2", "arithmetic operator"),
        ("b'x' == 1", "constant of type bytes"),
        ("user_type ==", "syntax error at column 13"),
        ("a b", "syntax error at column 3"),
        ("x" * (MAX_CONDITION_LENGTH + 1), "the limit is 1000"),
    ],
)
def test_refused_inputs_name_what_was_refused(text: str, named: str) -> None:
    with pytest.raises(ConditionError) as refused:
        parse_condition(text)
    assert named in str(refused.value)


def test_parsed_conditions_are_cached() -> None:
    assert parse_condition("user_type == 'cached'") is parse_condition("user_type == 'cached'")


def test_limit_is_inclusive() -> None:
    text = "user_id == '" + "a" * (MAX_CONDITION_LENGTH - 14) + "'"
    assert len(text) == MAX_CONDITION_LENGTH - 1
    assert parse_condition(text)(_context()) is False
