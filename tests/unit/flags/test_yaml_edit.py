"""The targeted edit of an override file against ruamel's round trip: for every file
layout it handles (block and one-line flow entries, quoted keys, comments, blank lines)
and every sequence of actions, it must parse to exactly the same data (key order
included), keep every comment, change only the changed flags' lines, and decline
(None) the layouts it does not handle so that the round trip takes over."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from app.flags.backend import FlagChange
from app.flags.model import FlagState
from app.flags.yaml_backend import edit_by_round_trip
from app.flags.yaml_edit import edit_flags

HEADER = "production overrides"


def parsed(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def ordered(data: Any) -> str:
    """The data with its key order, so that a reordering fails the comparison."""
    return json.dumps(data, default=str)


def comments(text: str) -> list[str]:
    """Every comment of `text`, whole-line or at a line's end, in order."""
    found = []
    for line in text.splitlines():
        match = re.search(r"(?:^|\s)(#.*)$", line)
        if match:
            found.append(match.group(1))
    return found


# -- generated override files ------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str  # as written in the file (maybe quoted)
    name: str  # as YAML reads it
    style: str  # block-flow | block-block | flow | null
    state: str | None  # written state, with its quotes, or None
    percentage: str | None
    extra: bool  # another key (default_variant) before `rollout`
    comment: str  # trailing comment on the header line ("" for none)


KEYS = [
    ("alpha", "alpha"),
    ("beta_flag", "beta_flag"),
    ("'gamma-q'", "gamma-q"),
    ('"delta d"', "delta d"),
    ("eps.ilon", "eps.ilon"),
    ("'it''s'", "it's"),
]
NEW_KEYS = ["zeta", "eta_new", "theta.x", "iota: quoted", "on"]
STATES = ["rollout", "'rollout'", '"disabled"', "enabled", "disabled"]
PERCENTAGES = ["5", "25.0", "12.5", "0", "100"]
QUOTES = "'\""


@st.composite
def entries(draw: st.DrawFn) -> list[Entry]:
    chosen = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    return [
        Entry(
            key=key,
            name=name,
            style=draw(st.sampled_from(["block-flow", "block-block", "flow", "null"])),
            state=draw(st.none() | st.sampled_from(STATES)),
            percentage=draw(st.none() | st.sampled_from(PERCENTAGES)),
            extra=draw(st.booleans()),
            comment=draw(st.sampled_from(["", "  # set by hand"])),
        )
        for key, name in chosen
    ]


def render(entry: Entry, indent: int, step: int) -> list[str]:
    head, body = " " * indent, " " * (indent + step)
    if entry.style == "flow":
        items = [f"state: {entry.state.strip(QUOTES)}"] if entry.state else []
        if entry.percentage is not None:
            items.append(f"rollout: {{strategy: percentage, percentage: {entry.percentage}}}")
        return [f"{head}{entry.key}: {{{', '.join(items)}}}{entry.comment}"]
    if entry.style == "null":
        return [f"{head}{entry.key}:{entry.comment}"]
    lines = [f"{head}{entry.key}:{entry.comment}"]
    if entry.state is not None:
        lines.append(f"{body}state: {entry.state}  # state comment")
    if entry.extra:
        lines.append(f'{body}default_variant: "off"')
    if entry.style == "block-flow":
        items = ["strategy: percentage"]
        if entry.percentage is not None:
            items.append(f"percentage: {entry.percentage}")
        lines.append(f"{body}rollout: {{{', '.join(items)}}}")
    else:
        lines.append(f"{body}rollout:  # rollout comment")
        lines.append(f"{body}{' ' * step}strategy: percentage")
        if entry.percentage is not None:
            lines.append(f"{body}{' ' * step}percentage: {entry.percentage}")
    if not entry.extra and entry.state is None and entry.style == "block-flow":
        lines.insert(1, f"{body}# a comment inside the entry")
    return lines


@st.composite
def override_files(draw: st.DrawFn) -> tuple[str, list[Entry]]:
    indent = draw(st.sampled_from([2, 4]))
    step = draw(st.sampled_from([2, 4]))
    found = draw(entries())
    lines = ["# Production overrides.", "# List only the keys that change.", ""]
    if draw(st.booleans()):
        lines.append('version: "1.0.0"  # top-level comment')
    if not found and draw(st.booleans()):
        lines.append("flags: {}  # none yet")
    else:
        lines.append("flags:")
    for entry in found:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(st.sampled_from(["", "  # between entries", "# at column 0"])))
        lines.extend(render(entry, indent, step))
    lines.extend(draw(st.lists(st.sampled_from(["", "  # trailing"]), max_size=2)))
    if draw(st.booleans()):
        lines.append("global: {metrics_enabled: true}")
    return "\n".join(lines) + "\n", found


action_changes = st.lists(
    st.builds(
        FlagChange,
        flag=st.sampled_from([name for _, name in KEYS] + NEW_KEYS),
        state=st.sampled_from(list(FlagState)),
        percentage=st.sampled_from([0.0, 1.0, 5.0, 12.5, 25.0, 50.0, 100.0]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(override_files(), st.lists(action_changes, min_size=1, max_size=5))
def test_the_targeted_edit_parses_like_the_round_trip_and_keeps_every_comment(
    generated: tuple[str, list[Entry]], actions: list[list[FlagChange]]
) -> None:
    text, _ = generated
    for changes in actions:
        reference = edit_by_round_trip(text, changes, HEADER)
        targeted = edit_flags(text, changes)
        assert targeted is not None
        assert ordered(parsed(targeted)) == ordered(parsed(reference))
        assert comments(targeted) == comments(text)
        assert_only_changed_lines_replaced(text, targeted, changes)
        text = targeted


# The lines an edit may rewrite: `flags: {}`, a `state`, `rollout` or `percentage`
# line, or a flag's one-line flow entry.
EDITABLE = re.compile(r"^(flags:|\s+(state|rollout|percentage):|\s+\S.*: \{.*\}( +#.*)?$)")


def assert_only_changed_lines_replaced(before: str, after: str, changes: list[FlagChange]) -> None:
    """At most the `state` and `rollout` / `percentage` line (or the flow entry) of each
    changed flag (and an empty `flags: {}`) is rewritten; every other line of `before`
    is still there, in order."""
    gone = Counter(before.splitlines()) - Counter(after.splitlines())
    assert sum(gone.values()) <= 2 * len({change.flag for change in changes}) + 1, gone
    assert all(EDITABLE.match(line) for line in gone), gone
    kept = iter(line for line in after.splitlines() if not EDITABLE.match(line))
    for line in before.splitlines():
        if not EDITABLE.match(line):
            assert any(line == candidate for candidate in kept), line


# -- layouts it declines -------------------------------------------------------------

CHANGE = [FlagChange("alpha", FlagState.ROLLOUT, 10)]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("flags:\n  alpha: {state: 'disabled'}\n", id="quoted in a flow entry"),
        pytest.param("flags:\n  alpha: {a: {b: {c: 1}}}\n", id="deep flow entry"),
        pytest.param("flags:\n  alpha: {state: x,\n    rollout: {}}\n", id="multi-line flow"),
        pytest.param("flags:\n  alpha: {rollout: 5}\n", id="scalar rollout in flow"),
        pytest.param("flags: {alpha: {state: disabled}}\n", id="flow flags"),
        pytest.param("flags:\n  alpha: disabled\n", id="scalar entry"),
        pytest.param("flags:\r\n  alpha:\r\n    state: rollout\r\n", id="CRLF"),
        pytest.param("flags:\n\talpha:\n\t\tstate: rollout\n", id="tabs"),
        pytest.param("\ufeffflags:\n  alpha:\n    state: rollout\n", id="BOM"),
        pytest.param("---\nflags:\n  alpha:\n    state: rollout\n", id="document marker"),
        pytest.param("flags:\n  alpha: &a\n    state: rollout\n", id="anchor"),
        pytest.param("flags:\n  alpha:\n    state: &s rollout\n", id="anchored value"),
        pytest.param("flags:\n  alpha:\n    state: >\n      rollout\n", id="folded state"),
        pytest.param("flags:\n  alpha:\n    rollout: {percentage: [5]}\n", id="nested flow"),
        pytest.param("flags:\n  alpha:\n    state: rollout\n  alpha:\n    state: x\n", id="dup"),
        pytest.param("flags:\n    alpha:\n  beta:\n    state: rollout\n", id="dedent"),
        pytest.param("version: '1'\n", id="no flags key"),
        pytest.param("- flags\n", id="not a mapping"),
        pytest.param("", id="empty file"),
    ],
)
def test_layouts_it_does_not_handle_are_left_to_the_round_trip(text: str) -> None:
    assert edit_flags(text, CHANGE) is None


@pytest.mark.parametrize("key", ["needs: quoting", "true", "null", "-dash", "ünïcode", "it's #1"])
def test_a_new_flag_whose_key_needs_quoting_is_written_quoted(key: str) -> None:
    text = "flags:\n  alpha:\n    state: rollout\n"
    change = [FlagChange(key, FlagState.ROLLOUT, 5)]
    edited = edit_flags(text, change)
    assert edited is not None
    assert parsed(edited) == parsed(edit_by_round_trip(text, change, HEADER))
    assert list(parsed(edited)["flags"]) == ["alpha", key]


@pytest.mark.parametrize("key", ["line\nbreak", "tab\tkey", " edge"])
def test_a_new_flag_whose_key_cannot_be_quoted_on_one_line_is_left_to_the_round_trip(
    key: str,
) -> None:
    assert edit_flags("flags:\n  alpha:\n", [FlagChange(key, FlagState.ROLLOUT, 5)]) is None


@pytest.mark.parametrize("percentage", [1e-5, float("nan")])
def test_a_percentage_yaml_spells_otherwise_is_left_to_the_round_trip(percentage: float) -> None:
    change = [FlagChange("alpha", FlagState.ROLLOUT, percentage)]
    assert edit_flags("flags:\n  alpha:\n    state: rollout\n", change) is None


def test_an_edit_touches_exactly_the_changed_values_keeping_quotes_and_comments() -> None:
    text = (
        "# production\n"
        "flags:\n"
        "  alpha:  # hand-made\n"
        "    state: 'rollout'  # was 5 %\n"
        "    rollout: {strategy: percentage, percentage: 5}\n"
        "\n"
        "  # beta is next\n"
        "  beta:\n"
        "    rollout:\n"
        "      strategy: percentage\n"
        "# the end\n"
    )
    changes = [
        FlagChange("alpha", FlagState.ROLLOUT, 10),
        FlagChange("beta", FlagState.DISABLED, 0),
        FlagChange("gamma", FlagState.ROLLOUT, 12.5),
    ]
    assert edit_flags(text, changes) == (
        "# production\n"
        "flags:\n"
        "  alpha:  # hand-made\n"
        "    state: 'rollout'  # was 5 %\n"
        "    rollout: {strategy: percentage, percentage: 10}\n"
        "\n"
        "  # beta is next\n"
        "  beta:\n"
        "    state: disabled\n"
        "    rollout:\n"
        "      strategy: percentage\n"
        "      percentage: 0\n"
        "  gamma:\n"
        "    state: rollout\n"
        "    rollout: {percentage: 12.5}\n"
        "# the end\n"
    )
