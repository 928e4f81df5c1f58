"""Targeting-rule conditions: parsed by a restricted evaluator, never `eval`. (stub)"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Condition", "ConditionError", "parse_condition"]

Condition = Callable[[Mapping[str, Any]], bool]


class ConditionError(ValueError):
    """The condition is not valid syntax or uses something not on the allow-list."""


def parse_condition(text: str) -> Condition:
    raise NotImplementedError
