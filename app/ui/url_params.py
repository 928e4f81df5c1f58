"""Reading values from a link (query parameters) against what a widget offers (pure).

A link may be stale, hand-edited or hostile: every function here returns only values
the widget offers, and a note naming each value it ignored and why.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.quoting import printable

__all__ = [
    "MAX_TEXT",
    "FromLink",
    "choice_from_link",
    "choices_from_link",
    "text_from_link",
]

T = TypeVar("T")

#: the longest free text (search, filters) a link may set
MAX_TEXT = 200


@dataclass(frozen=True)
class FromLink(Generic[T]):
    """The value a widget starts with, and what of the link was ignored (empty: nothing)."""

    value: T
    ignored: tuple[str, ...] = ()


def choice_from_link(
    name: str, raw: Sequence[str], choices: Sequence[T], default: T | None
) -> FromLink[T | None]:
    """The last of `raw` that names one of `choices` (by its text), else `default`.
    Every other value given is ignored with a note; an empty `raw` gives `default`."""
    offered = {str(choice): choice for choice in choices}
    picked: T | None = None
    picked_raw: str | None = None
    for value in raw:
        if value in offered:
            picked, picked_raw = offered[value], value
    if picked_raw is None:
        ignored = tuple(f"{name}={printable(v)}: not one of {_listed(offered)}" for v in raw)
        return FromLink(default, ignored)
    ignored = tuple(
        f"{name}={printable(v)}: "
        + ("given more than once, kept the last valid" if v in offered else "not offered")
        for v in raw
        if v != picked_raw
    )
    return FromLink(picked, ignored)


def choices_from_link(name: str, raw: Sequence[str], choices: Sequence[T]) -> FromLink[list[T]]:
    """Every comma-separated part of `raw` that names one of `choices`, in the choices'
    order and without repeats; the other parts are ignored with a note."""
    offered = {str(choice): choice for choice in choices}
    wanted: set[str] = set()
    ignored: list[str] = []
    for value in raw:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part in offered:
                wanted.add(part)
            else:
                ignored.append(f"{name}={printable(part)}: not one of {_listed(offered)}")
    return FromLink([c for text, c in offered.items() if text in wanted], tuple(ignored))


def text_from_link(name: str, raw: Sequence[str], max_chars: int = MAX_TEXT) -> FromLink[str]:
    """The last of `raw` without control characters (NUL, escapes, line breaks) and cut
    to `max_chars`, each with a note; earlier repeats are ignored."""
    if not raw:
        return FromLink("")
    *earlier, value = raw
    ignored = [f"{name}={printable(v)}: given more than once, kept the last" for v in earlier]
    kept = "".join(c for c in value if not _is_control(c))
    if kept != value:
        ignored.append(f"{name}: {len(value) - len(kept)} control character(s) removed")
        value = kept
    if len(value) > max_chars:
        ignored.append(f"{name}: cut to its first {max_chars} of {len(value)} characters")
        value = value[:max_chars]
    return FromLink(value, tuple(ignored))


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def _listed(offered: Iterable[str]) -> str:
    names = list(offered)
    return ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
