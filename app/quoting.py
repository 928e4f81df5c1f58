"""How untrusted text (a link value, a flag key from a file, a setting, a reason)
appears inside a message: on one line, cut short, and never with a character that a
terminal or a page would act on instead of showing."""

from __future__ import annotations

import unicodedata

__all__ = ["LONG_TEXT", "printable", "quoted"]

#: the most characters of a value a message quotes
SHOWN_LENGTH = 40
#: the most characters of a reason or a decision a terminal prints (on one line)
LONG_TEXT = 2000


def printable(text: str, *, ascii_only: bool = False, limit: int = SHOWN_LENGTH) -> str:
    """`text` cut to `limit` characters (then '…' and its length), with control and
    format characters (line breaks, escapes, right-to-left overrides) written as escapes.
    `ascii_only` escapes every other non-ASCII character too: where only ASCII is valid
    (a flag key), a look-alike letter then shows for what it is."""
    shown = "".join(_escaped(char) if _hidden(char) else char for char in text[:limit])
    if ascii_only:
        shown = shown.encode("ascii", "backslashreplace").decode()
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


def quoted(value: object, *, ascii_only: bool = False) -> str:
    """A text as `printable` in single quotes; any other value as its `repr`."""
    if isinstance(value, str):
        return f"'{printable(value, ascii_only=ascii_only)}'"
    return repr(value)


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf")


#: the escapes a person reads at a glance
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
