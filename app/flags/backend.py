"""Where flags are read from and written to: the flag backend protocol.

Every backend (`yaml`, `sql`, later a flag server) implements `FlagBackend`, and one
contract test suite runs against each. Writes are atomic and guarded by optimistic
concurrency: a change carries the version of each flag it was decided on, and is refused
whole, writing nothing, if any of them changed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.flags.model import FlagConfig, FlagDefinition, FlagState

__all__ = [
    "FlagBackend",
    "FlagChange",
    "FlagSnapshot",
    "UnknownFlag",
    "VersionConflict",
    "definition_version",
]


@dataclass(frozen=True)
class FlagChange:
    """Set one flag of one environment to `state` at `percentage` (0..100).

    `state` disabled keeps the configured percentage unless `percentage` says otherwise;
    the backend writes exactly these two fields and nothing else of the flag.
    """

    flag: str
    state: FlagState
    percentage: float


@dataclass(frozen=True)
class FlagSnapshot:
    """One environment's merged config as read, with a version token per flag."""

    environment: str
    config: FlagConfig
    versions: Mapping[str, str] = field(default_factory=dict)

    def flag(self, key: str) -> FlagDefinition:
        """The flag `key`; raises UnknownFlag when the environment has none."""
        try:
            return self.config.flags[key]
        except KeyError:
            raise UnknownFlag(key) from None


class UnknownFlag(KeyError):
    """The flag does not exist in this environment's configuration."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag

    def __str__(self) -> str:
        return f"unknown flag {self.flag!r}"


class VersionConflict(RuntimeError):
    """A flag changed since the caller read it; nothing was written. `current` is the
    fresh snapshot to show the user."""

    def __init__(self, flags: Sequence[str], current: FlagSnapshot) -> None:
        super().__init__(f"changed concurrently: {', '.join(flags)}")
        self.flags = tuple(flags)
        self.current = current


class FlagBackend(Protocol):
    """Reads and writes flags. Implementations are safe to use from several threads
    and several processes at once."""

    name: str

    def environments(self) -> list[str]:
        """The environments this backend holds, sorted."""
        ...

    def load(self, environment: str) -> FlagSnapshot:
        """The environment's merged config and per-flag versions; ConfigInvalid if bad."""
        ...

    def apply(
        self,
        environment: str,
        changes: Sequence[FlagChange],
        expected_versions: Mapping[str, str],
    ) -> FlagSnapshot:
        """Apply every change at once, or none: raises VersionConflict when a changed
        flag's current version differs from `expected_versions[flag]`, UnknownFlag for a
        flag the environment lacks, ConfigInvalid if the result would not validate.
        Returns the snapshot after the write."""
        ...


def definition_version(flag: FlagDefinition) -> str:
    """A version token for backends without a counter: the hash of the definition."""
    return hashlib.sha256(flag.model_dump_json().encode()).hexdigest()[:16]
