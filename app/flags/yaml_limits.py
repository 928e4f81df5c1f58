"""Limits every config text passes before a YAML composer sees it.

One hostile or mistaken file must not hang or exhaust the process that serves the
dashboard: a 2 KB "billion laughs" file expands to billions of nodes, 100,000 nested
brackets overflow the C stack of libyaml's recursive composer, and a 50 MB file takes a
minute and gigabytes to compose. So every reader of config (check-config, the dashboard,
hot reload, the YAML backend's round-trip reads) first calls `read_text` / `check_text`:

1. size, before reading more than the limit;
2. strict UTF-8 and YAML's printable characters (a NUL byte means binary data);
3. libyaml's event parser, which is iterative and stops at the first event over a
   limit: nesting depth, and nodes counted with every alias expanded to the node it
   repeats (an anchor referenced inside itself is refused outright).

A UTF-8 byte order mark at the very start is accepted and dropped (YAML allows it;
some Windows editors write it); the YAML backend does not write it back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from app.errors import RolloutError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "YamlRejected",
    "check_text",
    "read_text",
]

#: Largest config file. The 5,000-flag benchmark config (tests/bench/workloads.py) is
#: 1.8 MB; the bundled one 10 KB.
MAX_BYTES = 8 * 1024 * 1024
#: Deepest nesting of mappings and sequences. A flag is at most 7 levels deep
#: (flags > key > rollout > schedule > step); variant values may nest a little more.
MAX_DEPTH = 64
#: Most nodes a document may hold, each alias counted as the whole node it repeats.
#: The 5,000-flag benchmark config has about 150,000.
MAX_NODES = 1_000_000

_BOM = "\ufeff"
# Anything outside YAML 1.2's printable set (tab, line breaks, and printable Unicode).
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROL_NAMES = {"\x00": "a NUL byte", "\x1b": "an escape character"}
_SafeParser: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRejected(RolloutError, ValueError):
    """A text that breaks a limit: the message names the limit and its value."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_text(path: Path) -> str:
    """The file's text, BOM dropped; YamlRejected if it is over MAX_BYTES (read no further)
    or not UTF-8; OSError if it cannot be read."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        # A pipe or a growing file reports no size: never read more than the limit.
        data = b"" if size > MAX_BYTES else handle.read(MAX_BYTES + 1)
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        raise YamlRejected(_too_big(max(size, len(data))))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise YamlRejected(
            f"not UTF-8 text: byte 0x{byte:02x} (binary, or another encoding)",
            line,
        ) from None
    return text.removeprefix(_BOM)


def check_text(text: str) -> str:
    """`text` without a leading BOM if it is within every limit; YamlRejected naming the
    first limit broken. A YAML syntax error is left for the composer to report."""
    # Characters first: a text with more of them than the limit needs no encoding.
    size = len(text) if len(text) > MAX_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlRejected(_too_big(size))
    text = text.removeprefix(_BOM)
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        char = bad.group()
        name = _CONTROL_NAMES.get(char, f"the character {char!r}")
        raise YamlRejected(
            f"{name}: YAML allows only printable characters (binary data?)",
            line,
        )
    _check_structure(text)
    return text


def _too_big(size: int) -> str:
    return f"file is {size:,} bytes, over the limit of {MAX_BYTES:,} bytes for a config"


def _check_structure(text: str) -> None:
    """Walk libyaml's events once, keeping the nesting depth and the expanded node count."""
    count = _NodeCount()
    try:
        for event in yaml.parse(text, Loader=_SafeParser):  # disposes of its parser
            count.see(event)
    except yaml.YAMLError:
        return  # a syntax error: the composer stops at the same place and reports it


class _NodeCount:
    """Nodes seen so far, an alias adding the size its anchor's node had when it ended."""

    def __init__(self) -> None:
        self.total = 0
        self.sizes: dict[str, int] = {}  # anchor -> nodes in its finished node
        self.open: list[tuple[str | None, int]] = []  # (anchor, total at its start)

    def see(self, event: yaml.Event) -> None:
        """Count `event`; YamlRejected at the first limit it breaks."""
        if isinstance(event, yaml.AliasEvent):
            self.total += self._alias_size(event)
        elif isinstance(event, yaml.ScalarEvent):
            self.total += 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            self.total += 1
            self.open.append((event.anchor, self.total - 1))
            self.sizes.pop(event.anchor or "", None)  # an alias inside it means itself
            if len(self.open) > MAX_DEPTH:
                raise YamlRejected(
                    f"nesting deeper than the limit of {MAX_DEPTH} levels", _line(event)
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, started = self.open.pop()
            if anchor is not None:
                self.sizes[anchor] = self.total - started
        if self.total > MAX_NODES:
            raise YamlRejected(
                f"more than the limit of {MAX_NODES:,} nodes by this line, "
                "each alias counted as the node it repeats (an alias bomb?)",
                _line(event),
            )

    def _alias_size(self, event: yaml.AliasEvent) -> int:
        size = self.sizes.get(event.anchor or "")
        if size is not None:
            return size
        if any(anchor == event.anchor for anchor, _ in self.open):
            raise YamlRejected(
                f"alias *{event.anchor} refers to a node that contains it (a recursive structure)",
                _line(event),
            )
        return 0  # an undefined alias: the composer reports it at its line


def _line(event: yaml.Event) -> int | None:
    mark = event.start_mark
    return None if mark is None else int(mark.line) + 1
