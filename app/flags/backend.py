"""Where flags are read from and written to: the flag backend interface.

Every backend (`yaml`, `sql`, `unleash` in `app.unleash`) subclasses `FlagBackend`, and
one contract test suite runs against each. Writes are guarded by optimistic concurrency:
a change carries the version of each flag it was decided on, and is refused whole,
writing nothing, if any of them changed since.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from app.errors import RolloutError
from app.flags.model import FlagConfig, FlagDefinition, FlagState

__all__ = [
    "ExternalEdit",
    "FlagBackend",
    "FlagChange",
    "FlagSnapshot",
    "PartiallyApplied",
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
    """One environment's merged config as read, with a version token per flag.

    `read_only` names the flags the backend shows but will not change, each with the
    reason (a flag server's flag it cannot map safely); `receipts` says, per flag just
    written, what the backend's own log recorded for the write (e.g. "Unleash event #15
    by rollout-dashboard"; not compared: a snapshot read later equals the one a write
    returned). Both are empty for the yaml and sql backends."""

    environment: str
    config: FlagConfig
    versions: Mapping[str, str] = field(default_factory=dict)
    read_only: Mapping[str, str] = field(default_factory=dict)
    receipts: Mapping[str, str] = field(default_factory=dict, compare=False)

    def flag(self, key: str) -> FlagDefinition:
        """The flag `key`; raises UnknownFlag when the environment has none."""
        try:
            return self.config.flags[key]
        except KeyError:
            raise UnknownFlag(key) from None


class UnknownFlag(RolloutError, KeyError):
    """The flag does not exist in this environment's configuration."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag

    def __str__(self) -> str:
        return f"unknown flag {self.flag!r}"


class VersionConflict(RolloutError, RuntimeError):
    """A flag changed since the caller read it; nothing was written. `current` is the
    fresh snapshot to show the user."""

    def __init__(self, flags: Sequence[str], current: FlagSnapshot) -> None:
        super().__init__(f"changed concurrently: {', '.join(flags)}")
        self.flags = tuple(flags)
        self.current = current


class PartiallyApplied(RolloutError, RuntimeError):
    """A backend without transactions (`atomic` False) wrote some changes of a request
    but not all: `applied` were written and verified, `conflicted` had changed since they
    were read (nothing written for them), `failed` maps each flag that was not written
    to the reason, `unverified` each flag that was written but could not be read back.
    `current` is the snapshot after the writes (None when it could not be read)."""

    def __init__(
        self,
        applied: Sequence[str],
        conflicted: Sequence[str],
        failed: Mapping[str, str],
        current: FlagSnapshot | None,
        unverified: Mapping[str, str] | None = None,
    ) -> None:
        parts = [f"applied: {', '.join(applied) or 'none'}"]
        if conflicted:
            parts.append(f"changed concurrently: {', '.join(conflicted)}")
        parts.extend(f"failed: {flag}: {reason}" for flag, reason in failed.items())
        parts.extend(f"not verified: {flag}: {why}" for flag, why in (unverified or {}).items())
        super().__init__("; ".join(parts))
        self.applied = tuple(applied)
        self.conflicted = tuple(conflicted)
        self.failed = dict(failed)
        self.unverified = dict(unverified or {})
        self.current = current


class ExternalEdit(Protocol):
    """A change made in the flag server itself, not by the dashboard (the Unleash
    backend's `ExternalChange`)."""

    @property
    def flag(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def label(self) -> str: ...


class FlagBackend(ABC):
    """Reads and writes flags. Implementations are safe to use from several threads
    and several processes at once.

    Required: `name`, `environments`, `load`, `apply`. Optional capabilities have a
    default that does nothing (as OpenFeature's `AbstractProvider`): `atomic` True,
    `revision` None and `external_changes` none.

    `atomic` says whether `apply` writes several changes all at once or none (yaml, sql);
    a backend that cannot (a flag server's API) sets it False: it writes them one by one,
    refusing the whole request before the first write if any version is stale, and raises
    PartiallyApplied if it stops after a first write."""

    name: ClassVar[str]
    atomic: ClassVar[bool] = True

    @abstractmethod
    def environments(self) -> list[str]:
        """The environments this backend holds, sorted."""

    @abstractmethod
    def load(self, environment: str) -> FlagSnapshot:
        """The environment's merged config and per-flag versions; ConfigInvalid if bad."""

    @abstractmethod
    def apply(
        self,
        environment: str,
        changes: Sequence[FlagChange],
        expected_versions: Mapping[str, str],
    ) -> FlagSnapshot:
        """Apply every change at once, or none: raises VersionConflict when a changed
        flag's current version differs from `expected_versions[flag]`, UnknownFlag for a
        flag the environment lacks, ConfigInvalid if the result would not validate.
        Returns the snapshot after the write. (A backend that is not `atomic` raises
        PartiallyApplied when it stops after a first write.)"""

    def revision(self, environment: str) -> str | None:
        """A cheap token that changes whenever a write to `environment` commits, for a
        reader that polls (the reference evaluator's hot reload); None when the backend
        has none, and only `load` tells. SourceUnavailable when the backend does not
        answer."""
        return None

    def external_changes(self, environment: str) -> Sequence[ExternalEdit]:
        """The changes made in the flag server itself (not by the dashboard), newest
        first; none for a backend without such a log. SourceUnavailable or a
        RuntimeError when the log does not answer."""
        return []


def definition_version(flag: FlagDefinition) -> str:
    """A version token for backends without a counter: the hash of the definition."""
    return hashlib.sha256(flag.model_dump_json().encode()).hexdigest()[:16]
