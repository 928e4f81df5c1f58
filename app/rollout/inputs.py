"""What a person may type into an action: reasons, names, keys (pure rules).

Every rule returns the problem in words, or None. The action function enforces them
for every caller (pages, CLI, scripts); the dialog shows the same words while typing.
Nothing is ever cut or cleaned silently: a value that breaks a rule is refused whole.
"""

from __future__ import annotations

import re
import unicodedata

from app.quoting import quoted

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_REASON_LENGTH",
    "actor_problem",
    "environment_problem",
    "flag_key_problem",
    "reason_problem",
]

#: The longest reason kept in the audit log: a paragraph or two, never a pasted log.
MAX_REASON_LENGTH = 2000
#: The longest actor, flag or environment name (the audit columns hold 200 characters).
MAX_NAME_LENGTH = 200

# Bidirectional overrides reorder what a reader sees ("trojan source"): never in a record.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\t\n\r")
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def reason_problem(reason: str) -> str | None:
    """Empty (after trimming), longer than `MAX_REASON_LENGTH`, or holding a control
    character other than tabs and line breaks: refused, with the length when too long."""
    text = reason.strip()
    if not text:
        return "a reason is required"
    if len(text) > MAX_REASON_LENGTH:
        return (
            f"the reason is {len(text):,} characters long; the limit is "
            f"{MAX_REASON_LENGTH:,}. Shorten it: nothing was cut and nothing was sent"
        )
    return _control_problem("the reason", text, allowed=_LINE_BREAKS)


def actor_problem(name: str) -> str | None:
    """An actor name is one line of at most `MAX_NAME_LENGTH` printable characters."""
    return _name_problem("the actor name", name)


def flag_key_problem(key: str) -> str | None:
    """A flag key asked for is one line of at most `MAX_NAME_LENGTH` printable characters
    (whether such a flag exists is the backend's answer)."""
    return _name_problem("the flag key", key)


def environment_problem(name: str) -> str | None:
    """An environment is a plain name (letters, digits, `_`, `-`): it becomes part of a
    file name (`feature_flags_<env>.yaml`), so a path or a quote is refused."""
    problem = _name_problem("the environment name", name)
    if problem is None and not _ENVIRONMENT_NAME.fullmatch(name):
        return f"the environment name {quoted(name)} is not a plain name (letters, digits, _, -)"
    return problem


def _name_problem(what: str, name: str) -> str | None:
    if not name.strip():
        return f"{what} is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} is {len(name):,} characters long; the limit is {MAX_NAME_LENGTH}"
    return _control_problem(what, name, allowed=frozenset())


def _control_problem(what: str, text: str, *, allowed: frozenset[str]) -> str | None:
    """The first control or bidirectional-override character, named by code point."""
    for position, char in enumerate(text, start=1):
        if char in allowed:
            continue
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            return (
                f"{what} contains the control character U+{ord(char):04X} at position "
                f"{position}: only printable text"
                + (", tabs and line breaks are allowed" if allowed else " is allowed")
            )
    return None
