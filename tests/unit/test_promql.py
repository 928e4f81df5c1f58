"""PromQL text building: escaping round-trips, names are checked, durations are exact."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queries.promql import label_name, promql_duration, promql_string, selector

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE |= {"\\": "\\", '"': '"'}


def unquote(literal: str) -> str:
    """Go's strconv.Unquote for double-quoted strings, as PromQL reads them."""
    assert literal.startswith('"') and literal.endswith('"') and len(literal) >= 2
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        char = body[i]
        assert char not in '"\n', f"unescaped {char!r} at {i} in {literal!r}"
        if char != "\\":
            out.append(char)
            i += 1
            continue
        kind = body[i + 1]
        if kind in _SIMPLE:
            out.append(_SIMPLE[kind])
            i += 2
        elif kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + width]
            assert re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits), literal
            code = int(digits, 16)
            # \xHH is a byte in Go: only ASCII ones stand for a character on their own
            assert kind != "x" or code < 0x80, literal
            assert not 0xD800 <= code <= 0xDFFF and code <= 0x10FFFF, literal
            out.append(chr(code))
            i += 2 + width
        else:
            raise AssertionError(f"escape Go does not accept: \\{kind} in {literal!r}")
    return "".join(out)


@given(st.text())
def test_promql_string_round_trips_every_string(value: str) -> None:
    assert unquote(promql_string(value)) == value


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_promql_string_is_printable_on_one_line(value: str) -> None:
    literal = promql_string(value)
    assert "\n" not in literal and "\r" not in literal
    assert literal.isprintable()


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ('x"}) or vector(1)', '"x\\"}) or vector(1)"'),
        ("a\\b", '"a\\\\b"'),
        ("line\nnext\r\ttab", '"line\\nnext\\r\\ttab"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("\x85", '"\\u0085"'),
        ("\u2028", '"\\u2028"'),
        ("日本 ✓", '"日本 ✓"'),
    ],
)
def test_promql_string_examples(value: str, literal: str) -> None:
    assert promql_string(value) == literal


def test_promql_string_refuses_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        promql_string("a\ud800b")


def test_selector_escapes_every_value() -> None:
    text = selector("feature_flag_evaluations_total", {"environment": 'prod"', "flag": "a\\"})
    assert text == 'feature_flag_evaluations_total{environment="prod\\"",flag="a\\\\"}'


def test_selector_regex_matchers_follow_the_equal_ones_escaped() -> None:
    text = selector("http_requests_total", {"env": "prod"}, {"track": 'a\\.b|q"t', "code": "5.."})
    assert text == 'http_requests_total{env="prod",track=~"a\\\\.b|q\\"t",code=~"5.."}'


def test_selector_refuses_a_bad_regex_label_name() -> None:
    with pytest.raises(ValueError, match="label name"):
        selector("up", {}, {"bad-name": ".*"})


def test_selector_without_labels() -> None:
    assert selector("up", {}) == "up{}"
    assert selector("job:requests:rate5m", {"a": "b"}) == 'job:requests:rate5m{a="b"}'


@pytest.mark.parametrize("metric", ["sum", "on", "Inf", "nan", "offset"])
def test_selector_puts_keyword_metric_names_in_the_braces(metric: str) -> None:
    assert selector(metric, {"a": "b"}) == f'{{__name__="{metric}",a="b"}}'


@pytest.mark.parametrize(
    "metric", ["", "1abc", "flag-evaluations", "a b", 'a"', "a{b}", "ünï", "a\n"]
)
def test_selector_refuses_bad_metric_names(metric: str) -> None:
    with pytest.raises(ValueError, match="metric name"):
        selector(metric, {})


@pytest.mark.parametrize(
    "label", ["", "1abc", "flag-name", "a b", 'a"', "a:b", "a=b", "ünï", "flag\n"]
)
def test_selector_refuses_bad_label_names(label: str) -> None:
    with pytest.raises(ValueError, match="label name"):
        selector("up", {label: "x"})
    with pytest.raises(ValueError, match="label name"):
        label_name(label)


@given(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]*", fullmatch=True))
def test_every_valid_label_name_is_accepted(label: str) -> None:
    assert label_name(label) == label
    assert selector("up", {label: "x"}) == f'up{{{label}="x"}}'


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (timedelta(minutes=5), "300s"),
        (timedelta(hours=1, seconds=1), "3601s"),
        (timedelta(days=7), "604800s"),
    ],
)
def test_promql_duration(duration: timedelta, text: str) -> None:
    assert promql_duration(duration) == text


@pytest.mark.parametrize(
    "duration",
    [timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=500), timedelta(seconds=1.5)],
)
def test_promql_duration_refuses_sub_second_and_fractional(duration: timedelta) -> None:
    with pytest.raises(ValueError, match="duration"):
        promql_duration(duration)


def test_the_replacement_character_travels_escaped() -> None:
    """Prometheus' lexer refuses a raw U+FFFD ("invalid UTF-8 rune"); found by the
    round trip through a real Prometheus."""
    assert promql_string("a\ufffdb") == '"a\\ufffdb"'
