"""Reading back what was recorded: a name an older (or newer) version stored, which this
one has no member for, is kept, typed apart, rather than refused."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

__all__ = ["Unrecognised", "recognised"]

_Member = TypeVar("_Member", bound=StrEnum)


class Unrecognised(str):
    """A stored name this version does not know (no member of its enum): kept and shown
    exactly as stored, equal to no member."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Unrecognised({str.__repr__(self)})"


def recognised(kind: type[_Member], stored: str) -> _Member | Unrecognised:
    """`stored` as the member of `kind` it names, or kept as `Unrecognised`."""
    try:
        return kind(stored)
    except ValueError:
        return Unrecognised(stored)
