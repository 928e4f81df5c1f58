"""A targeted text edit of an override file: only the lines of the changed flags change.

The ruamel.yaml round trip of a 1,000-line override costs tens of milliseconds to load
and as much again to dump; a flag change touches two lines. `edit_flags` rewrites
those lines (a flag's `state` and `rollout.percentage`, as `FlagChange` says) and
appends the entries the file lacks, in the layout the dashboard and people write:
a block mapping `flags:` of block-style entries, `rollout` in flow (`{percentage: 5}`)
or block style. Every other line, comments and blank lines included, is kept byte for
byte.

It answers None for any layout it does not recognise (flow-style entries, anchors,
tabs, CR line ends, document markers, a key it cannot read ...): the caller then uses
the ruamel round trip. The caller must also check that the result parses to what the
round trip would give (`YamlFlagBackend` does), so a mistake here costs speed, never
data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.flags.backend import FlagChange
from app.flags.model import FlagState

__all__ = ["edit_flags"]

# A mapping key: plain (no `:`, `#`, and not starting like another YAML construct),
# single-quoted, or double-quoted without escapes.
_KEY = r"""(?P<key>[^\s'"#{}\[\],&*!|>%@`?:-][^:#]*?|'(?:[^']|'')*'|"[^"\\]*")"""
_ENTRY = re.compile(rf"^(?P<indent> *){_KEY}:(?P<after>(?:[ ].*)?)$")
# The rest of a `key: value` line: a plain or quoted scalar and an optional comment.
_SCALAR = re.compile(
    r"""^(?P<pre> +)(?P<value>'[^']*'|"[^"\\]*"|[^\s'"#&*!|>{}\[\],%@`][^#]*?)(?P<post> +#.*| *)$"""
)
_EMPTY = re.compile(r"^(?P<post> *(?:#.*)?)$")
_FLOW = re.compile(r"^(?P<pre> +)\{(?P<inner>[^{}\[\]'\"#&*!|>%@`]*)\}(?P<post> +#.*| *)$")
# An entry's one-line flow mapping of plain scalars, with flow mappings one level deep.
_FLOW_PLAIN = r"[^{}\[\]'\"#&*!|>%@`]"
_FLOW_ENTRY = re.compile(
    rf"^(?P<pre> +)\{{(?P<inner>(?:{_FLOW_PLAIN}|\{{{_FLOW_PLAIN}*\}})*)\}}(?P<post> +#.*| *)$"
)
_FLOW_ITEM = re.compile(
    r"^(?P<lead> *)(?P<key>[A-Za-z_][\w-]*): +(?P<value>\{[^{}]*\}|[^\s{},:][^{},]*?)(?P<trail> *)$"
)
_PERCENTAGE_ITEM = re.compile(r"(?<![\w-])percentage: *(?P<value>[^,}\s]+)")
_DEFAULT_STEP = 2


class _Unhandled(Exception):
    """The layout is not one this editor handles: use the round trip."""


@dataclass
class _Entry:
    """One flag of the `flags:` block: its header line and last line of content."""

    key: str
    header: int
    last: int
    indent: int


@dataclass
class _Edits:
    """Line replacements and insertions, applied in one pass at the end."""

    replaced: dict[int, str] = field(default_factory=dict)
    inserted: dict[int, list[str]] = field(default_factory=dict)

    def insert_after(self, index: int, line: str) -> None:
        self.inserted.setdefault(index, []).append(line)

    def apply(self, lines: list[str]) -> str:
        out: list[str] = []
        for index, line in enumerate(lines):
            out.append(self.replaced.get(index, line))
            out.extend(self.inserted.get(index, ()))
        return "\n".join(out) + "\n"


def edit_flags(text: str, changes: Sequence[FlagChange]) -> str | None:
    """`text` with each change's `state` and `rollout.percentage` written in place (the
    last change of a flag wins), new flags appended to `flags:`; None if the layout is
    not one this editor handles."""
    try:
        return _edit(text, changes)
    except _Unhandled:
        return None


def _edit(text: str, changes: Sequence[FlagChange]) -> str:
    if not changes or "\r" in text or "\t" in text or text.startswith("\ufeff"):
        raise _Unhandled
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    edits = _Edits()
    flags_line, end = _flags_block(lines, edits)
    entries = _entries(lines, flags_line, end)
    by_key = {entry.key: entry for entry in entries}
    wanted = {change.flag: change for change in changes}  # the last change wins
    indent = entries[0].indent if entries else _DEFAULT_STEP
    step = _body_step(lines, entries)
    last_content = max([flags_line, *(entry.last for entry in entries)])
    for key, change in wanted.items():
        if key in by_key:
            _edit_entry(lines, by_key[key], change, step, edits)
    # After the edits of the last entry, which insert at the same line.
    for key, change in wanted.items():
        if key not in by_key:
            for line in _new_entry(key, change, indent, step):
                edits.insert_after(last_content, line)
    return edits.apply(lines)


def _is_content(line: str) -> bool:
    stripped = line.lstrip(" ")
    return bool(stripped) and not stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key(token: str) -> str:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token.startswith('"'):
        return token[1:-1]
    return token.rstrip()


def _flags_block(lines: list[str], edits: _Edits) -> tuple[int, int]:
    """The index of the top-level `flags:` line and the end of its block (exclusive)."""
    found: int | None = None
    end = len(lines)
    for index, line in enumerate(lines):
        if not _is_content(line) or line.startswith(" "):
            continue
        match = _ENTRY.match(line)
        if match is None or line.startswith(("---", "...", "%")):
            raise _Unhandled
        if found is not None and end == len(lines):
            end = index
        if _key(match["key"]) == "flags":
            if found is not None:
                raise _Unhandled  # a duplicate key: let the loader report it
            found = index
            after = match["after"]
            flow = _FLOW.match(after)
            if flow is not None and not flow["inner"].strip():
                edits.replaced[index] = line[: match.end("key") + 1] + flow["post"]
            elif _EMPTY.match(after) is None:
                raise _Unhandled
    if found is None:
        raise _Unhandled
    return found, end


def _entries(lines: list[str], start: int, end: int) -> list[_Entry]:
    """The keys at one indentation strictly between `start` and `end`, each with the last
    line of its value; _Unhandled for anything else (a duplicate key, a stray line)."""
    entries: list[_Entry] = []
    indent: int | None = None
    for index in range(start + 1, end):
        line = lines[index]
        if not _is_content(line):
            continue
        depth = _indent(line)
        indent = depth if indent is None else indent
        if depth == indent:
            match = _ENTRY.match(line)
            if match is None:
                raise _Unhandled
            entries.append(_Entry(_key(match["key"]), index, index, depth))
        elif depth > indent and entries:
            entries[-1].last = index
        else:
            raise _Unhandled
    if len({entry.key for entry in entries}) < len(entries):
        raise _Unhandled
    return entries


def _body_step(lines: list[str], entries: list[_Entry]) -> int:
    """How far the file indents an entry's keys below its name (2 unless it says)."""
    for entry in entries:
        body = _first_indent(lines, entry.header + 1, entry.last)
        if body is not None:
            return body - entry.indent
    return _DEFAULT_STEP


def _first_indent(lines: list[str], first: int, last: int) -> int | None:
    """The indentation of the first line of content between `first` and `last`."""
    return next((_indent(lines[i]) for i in range(first, last + 1) if _is_content(lines[i])), None)


def _children(lines: list[str], first: int, last: int) -> dict[str, tuple[int, int]]:
    """Keys at the body's indentation between `first` and `last` (inclusive): key →
    (line, last line of its value)."""
    return {entry.key: (entry.header, entry.last) for entry in _entries(lines, first - 1, last + 1)}


def _edit_entry(
    lines: list[str], entry: _Entry, change: FlagChange, step: int, edits: _Edits
) -> None:
    header = _ENTRY.match(lines[entry.header])
    assert header is not None
    if _EMPTY.match(header["after"]) is None:
        if entry.last != entry.header:
            raise _Unhandled  # a multi-line value
        _edit_flow_entry(lines, entry.header, change, edits)
        return
    keys = _children(lines, entry.header + 1, entry.last)
    body = _first_indent(lines, entry.header + 1, entry.last) or entry.indent + step
    state = FlagState(change.state).value
    if "state" in keys:
        line, last = keys["state"]
        if last != line:
            raise _Unhandled  # a multi-line value
        edits.replaced[line] = _with_scalar(lines[line], state)
    else:
        edits.insert_after(entry.header, f"{' ' * body}state: {state}")
    percentage = _number(change.percentage)
    if "rollout" not in keys:
        edits.insert_after(entry.last, f"{' ' * body}rollout: {{percentage: {percentage}}}")
        return
    line, last = keys["rollout"]
    _edit_rollout(lines, line, last, percentage, edits)


def _edit_rollout(lines: list[str], line: int, last: int, percentage: str, edits: _Edits) -> None:
    match = _ENTRY.match(lines[line])
    assert match is not None
    head = lines[line][: match.start("after")]
    flow = _FLOW.match(match["after"])
    if flow is not None and last == line:
        inner = _with_percentage(flow["inner"], percentage)
        edits.replaced[line] = f"{head}{flow['pre']}{{{inner}}}{flow['post']}"
        return
    empty = _EMPTY.match(match["after"])
    if empty is None:
        raise _Unhandled
    if last == line:  # `rollout:` with no value (null): the round trip writes a map
        edits.replaced[line] = f"{head} {{percentage: {percentage}}}{empty['post']}"
        return
    keys = _children(lines, line + 1, last)
    if "percentage" in keys:
        at, end = keys["percentage"]
        if end != at:
            raise _Unhandled
        edits.replaced[at] = _with_scalar(lines[at], percentage)
        return
    depth = _first_indent(lines, line + 1, last)
    edits.insert_after(last, f"{' ' * (depth or 0)}percentage: {percentage}")


def _with_percentage(inner: str, percentage: str) -> str:
    """The inside of a flow `rollout: {...}` with `percentage` set (added at the end)."""
    items = list(_PERCENTAGE_ITEM.finditer(inner))
    if len(items) > 1:
        raise _Unhandled
    if items:
        item = items[0]
        return f"{inner[: item.start('value')]}{percentage}{inner[item.end('value') :]}"
    if inner.strip():
        return f"{inner.rstrip()}, percentage: {percentage}{inner[len(inner.rstrip()) :]}"
    return f"percentage: {percentage}"


def _edit_flow_entry(lines: list[str], line: int, change: FlagChange, edits: _Edits) -> None:
    """An entry on one line, `key: {state: disabled, rollout: {percentage: 5}}`."""
    match = _ENTRY.match(lines[line])
    assert match is not None
    flow = _FLOW_ENTRY.match(match["after"])
    if flow is None:
        raise _Unhandled
    items = _flow_items(flow["inner"])
    keys = [item["key"] for item in items]
    if len(set(keys)) < len(keys):
        raise _Unhandled
    texts = [item.string for item in items]
    state = FlagState(change.state).value
    percentage = _number(change.percentage)
    for index, item in enumerate(items):
        value = item["value"]
        if item["key"] == "state" and not value.startswith("{"):
            value = state
        elif item["key"] == "rollout":
            rollout = _FLOW.match(f" {value}")
            if rollout is None:
                raise _Unhandled
            value = f"{{{_with_percentage(rollout['inner'], percentage)}}}"
        texts[index] = f"{item.string[: item.start('value')]}{value}{item['trail']}"
    if "rollout" not in keys:
        texts.append(f"{' ' if texts else ''}rollout: {{percentage: {percentage}}}")
    if "state" not in keys:
        texts = [f"state: {state}", *([f" {texts[0].lstrip()}", *texts[1:]] if texts else [])]
    inner = ",".join(texts)
    edits.replaced[line] = (
        f"{lines[line][: match.start('after')]}{flow['pre']}{{{inner}}}{flow['post']}"
    )


def _flow_items(inner: str) -> list[re.Match[str]]:
    """The `key: value` items of a flow mapping's inside, split at its own commas."""
    if not inner.strip():
        return []
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:index])
            start = index + 1
    parts.append(inner[start:])
    items = [_FLOW_ITEM.match(part) for part in parts]
    if any(item is None for item in items):
        raise _Unhandled
    return [item for item in items if item is not None]


def _with_scalar(line: str, value: str) -> str:
    """`line` (`key: old  # comment`) with `value` in place of `old`, in its quotes."""
    match = _ENTRY.match(line)
    assert match is not None
    scalar = _SCALAR.match(match["after"])
    if scalar is None:
        raise _Unhandled
    old = scalar["value"]
    quoted = f"{old[0]}{value}{old[0]}" if old[0] in "'\"" else value
    return f"{line[: match.start('after')]}{scalar['pre']}{quoted}{scalar['post']}"


def _new_entry(key: str, change: FlagChange, indent: int, step: int) -> list[str]:
    """The lines of a flag the file lacks, as the round trip writes them."""
    body = " " * (indent + step)
    return [
        f"{' ' * indent}{_key_token(key)}:",
        f"{body}state: {FlagState(change.state).value}",
        f"{body}rollout: {{percentage: {_number(change.percentage)}}}",
    ]


def _key_token(key: str) -> str:
    """`key` as written: plain when YAML reads it back as this string, else quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key) and key.lower() not in _RESERVED:
        return key
    if not key.isprintable() or key != key.strip():
        raise _Unhandled  # line breaks, tabs, edge spaces: leave them to ruamel
    return "'" + key.replace("'", "''") + "'"


# Plain words YAML would read as something other than a string.
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})


def _number(percentage: float) -> str:
    value = float(percentage)
    text = str(int(value)) if value.is_integer() else repr(value)
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        raise _Unhandled  # 1e-05, nan, inf: YAML spells them otherwise
    return text
