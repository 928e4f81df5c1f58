"""docs/design.md §6 exit codes, in a module of their own so that the CLI can name them without
loading the action machinery (`rollout-dashboard --help` stays instant)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """docs/design.md §6 exit codes, shared by the CLI and the JSON results."""

    DONE = 0
    REFUSED = 1
    USAGE = 2
    CONFLICT = 3
    UNAVAILABLE = 4
    REQUESTED = 5  # not applied: a change request now waits for another person's approval
    CLOSED_PIPE = 141  # stdout closed by its reader: 128 + SIGPIPE, as the shell reports a tool
