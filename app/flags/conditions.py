"""Targeting-rule conditions: parsed by a restricted evaluator, never `eval`.

A condition is a Python expression over the evaluation context (`user_type == 'admin'`).
It is parsed with `ast` and compiled into a tree of closures that only know an
allow-list of constructs, so a config file can never run code, touch attributes or
call anything but `custom_attributes.get(<constant>[, <constant>])`.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from app.errors import RolloutError

__all__ = ["MAX_CONDITION_LENGTH", "Condition", "ConditionError", "parse_condition"]

MAX_CONDITION_LENGTH = 1_000

Condition = Callable[[Mapping[str, Any]], bool]

# A compiled sub-expression: context in, plain Python value out.
_Expr = Callable[[Mapping[str, Any]], Any]


class ConditionError(RolloutError, ValueError):
    """The condition is not valid syntax or uses something not on the allow-list."""


_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
}

_CONSTANT_TYPES = (str, int, float, bool, type(None))

# Friendlier names for constructs people actually try; anything else uses its AST name.
_CONSTRUCT_NAMES: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.NamedExpr: "assignment expression",
    ast.Subscript: "subscript",
    ast.BinOp: "arithmetic operator",
    ast.IfExp: "conditional expression",
    ast.Dict: "dict literal",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "starred expression",
    ast.Slice: "slice",
}


def parse_condition(text: str) -> Condition:
    """Compile `text` into a predicate over a context mapping (cached by text).

    Raises ConditionError for syntax errors, texts over 1,000 characters and any
    construct outside the allow-list, naming the construct.
    """
    return _parse_cached(text)


@lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Condition:
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"condition is {len(text)} characters long; the limit is {MAX_CONDITION_LENGTH}"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        # An unexpected end of input is reported at offset 0: point just past the text.
        column = error.offset or len(text) + 1
        raise ConditionError(f"syntax error at column {column}: {error.msg}") from error
    except (ValueError, RecursionError, MemoryError) as error:
        # ast.parse raises ValueError for NUL bytes and RecursionError for deep nesting.
        raise ConditionError(f"condition cannot be parsed: {error}") from error
    expression = _compile(tree.body)
    if isinstance(tree.body, ast.Compare):
        return expression  # a comparison already gives a bool: no wrapper to call

    def condition(context: Mapping[str, Any]) -> bool:
        return bool(expression(context))

    return condition


def _compile(node: ast.expr) -> _Expr:
    if isinstance(node, ast.BoolOp):
        return _compile_boolop(node)
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not):
            raise _refused(node, "unary operator")
        operand = _compile(node.operand)
        return lambda context: not operand(context)
    if isinstance(node, ast.Compare):
        return _compile_compare(node)
    if isinstance(node, ast.Name):
        name = node.id
        return lambda context: context.get(name)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise _refused(node, f"constant of type {type(node.value).__name__}")
        value = node.value
        return lambda _context: value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return _compile_collection(node)
    if isinstance(node, ast.Call):
        return _compile_call(node)
    if isinstance(node, ast.Attribute):
        raise _refused(node, "attribute access")
    raise _refused(node, _CONSTRUCT_NAMES.get(type(node), type(node).__name__))


def _compile_boolop(node: ast.BoolOp) -> _Expr:
    operands = [_compile(value) for value in node.values]
    if isinstance(node.op, ast.And):

        def all_of(context: Mapping[str, Any]) -> Any:
            result: Any = True
            for operand in operands:
                result = operand(context)
                if not result:
                    return result
            return result

        return all_of

    def any_of(context: Mapping[str, Any]) -> Any:
        result: Any = False
        for operand in operands:
            result = operand(context)
            if result:
                return result
        return result

    return any_of


def _compile_compare(node: ast.Compare) -> _Expr:
    operands = [_compile(node.left), *(_compile(right) for right in node.comparators)]
    functions: list[Callable[[Any, Any], Any]] = []
    for op in node.ops:
        function = _COMPARISONS.get(type(op))
        if function is None:
            raise ConditionError(f"comparison '{_OP_SYMBOLS.get(type(op), '?')}' is not allowed")
        functions.append(function)
    if len(functions) == 1:
        left, right = node.left, node.comparators[0]
        if isinstance(left, ast.Name) and isinstance(right, ast.Constant):
            return _compile_name_comparison(functions[0], left.id, right.value)
        return _compile_one_comparison(functions[0], *operands)

    def compare(context: Mapping[str, Any]) -> bool:
        left = operands[0](context)
        for function, right_operand in zip(functions, operands[1:], strict=True):
            right = right_operand(context)
            try:
                if not function(left, right):
                    return False
            except TypeError:
                # None < 3 or 'a' in 5: a missing attribute should not match, not crash.
                return False
            left = right
        return True

    return compare


def _compile_one_comparison(
    function: Callable[[Any, Any], Any], left_operand: _Expr, right_operand: _Expr
) -> _Expr:
    """`a op b`, the usual condition, without the loop over a chain (`a < b < c`)."""

    def compare_one(context: Mapping[str, Any]) -> bool:
        left, right = left_operand(context), right_operand(context)
        try:
            return bool(function(left, right))
        except TypeError:
            return False  # as in a chain: a missing attribute does not match

    return compare_one


def _compile_name_comparison(function: Callable[[Any, Any], Any], name: str, value: Any) -> _Expr:
    """`user_type == 'staff'`, the most common condition, in one call per evaluation."""

    def compare_name(context: Mapping[str, Any]) -> bool:
        try:
            return bool(function(context.get(name), value))
        except TypeError:
            return False

    return compare_name


_OP_SYMBOLS: dict[type[ast.cmpop], str] = {ast.Is: "is", ast.IsNot: "is not"}


def _compile_collection(node: ast.List | ast.Tuple | ast.Set) -> _Expr:
    items = [_compile(item) for item in node.elts]
    if isinstance(node, ast.Set):
        return lambda context: {item(context) for item in items}
    if isinstance(node, ast.Tuple):
        return lambda context: tuple(item(context) for item in items)
    return lambda context: [item(context) for item in items]


def _compile_call(node: ast.Call) -> _Expr:
    func = node.func
    is_attributes_get = (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and isinstance(func.value, ast.Name)
        and func.value.id == "custom_attributes"
    )
    if not is_attributes_get:
        raise ConditionError(f"function call '{ast.unparse(func)}' is not allowed")
    if node.keywords or not 1 <= len(node.args) <= 2:
        raise ConditionError(
            "custom_attributes.get() takes a constant key and an optional constant default"
        )
    constants: list[Any] = []
    for argument in node.args:
        if not isinstance(argument, ast.Constant) or not isinstance(
            argument.value, _CONSTANT_TYPES
        ):
            raise ConditionError(
                f"custom_attributes.get() argument '{ast.unparse(argument)}' must be a constant"
            )
        constants.append(argument.value)
    key = constants[0]
    default = constants[1] if len(constants) == 2 else None

    def get_attribute(context: Mapping[str, Any]) -> Any:
        attributes = context.get("custom_attributes")
        if not isinstance(attributes, Mapping):
            return default
        return attributes.get(key, default)

    return get_attribute


def _refused(node: ast.AST, construct: str) -> ConditionError:
    return ConditionError(f"{construct} '{ast.unparse(node)}' is not allowed")
