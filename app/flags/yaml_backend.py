"""The `yaml` flag backend: the config files themselves (docs/design.md §2), written atomically.

The dashboard writes only an environment's override file `feature_flags_<env>.yaml`,
never the base file: a change in production must not leak into staging. An edit
rewrites only the changed flags' lines (`yaml_edit`, checked to parse to what the round
trip would write, and then only those flags are validated again); layouts it does not
handle go through ruamel.yaml's round-trip mode. Either way comments, key order and
quoting survive, and the new text is validated (merged with the base) before anything
is replaced: temp file fsynced, previous version copied to the history (fsynced, in a
second thread meanwhile), rename, directory fsynced. A service hot-reloading the file
sees the old or the new file, never half of one.

Versions are content hashes (`definition_version`) of each merged flag. A change
A → B → A gives the same version again; that is harmless, since the caller decided on
a state identical to the current one.

`environments()` lists the override files present; `load` and `apply` also accept an
environment without one (the base applies unchanged; `apply` creates the file).
"""

from __future__ import annotations

import copy
import fcntl
import io
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken

from app.flags.backend import (
    FlagBackend,
    FlagChange,
    FlagSnapshot,
    VersionConflict,
    definition_version,
)
from app.flags.loader import (
    checked_text,
    environments,
    load_derived,
    override_path,
    parsed_data,
)
from app.flags.model import FlagConfig, FlagState
from app.flags.yaml_edit import edit_flags

__all__ = ["HISTORY_DIR", "YamlFlagBackend", "edit_by_round_trip"]

#: Previous versions of each override file, beside the config.
HISTORY_DIR = ".history"

# flock already serialises separate open files, even within one process; the thread
# lock keeps threads of one process from queueing on the kernel and documents intent.
_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class YamlFlagBackend(FlagBackend):
    """Flags in `path` (the base feature_flags.yaml) and its override files.

    Safe across threads and processes: every write holds an exclusive `flock` on
    `.<stem>.lock` beside the config. The lock dies with its process, so a writer
    killed mid-write never blocks the next one.
    """

    name = "yaml"

    def __init__(self, path: Path, keep_versions: int = 50) -> None:
        if keep_versions < 1:
            raise ValueError("keep_versions must be at least 1")
        self.path = path
        self.keep_versions = keep_versions
        self.history_dir = path.parent / HISTORY_DIR
        self._lock_path = path.with_name(f".{path.stem}.lock")

    def environments(self) -> list[str]:
        """Environments with an override file beside the base file, sorted."""
        return environments(self.path)

    def load(self, environment: str) -> FlagSnapshot:
        """The merged config and a content hash per flag; ConfigInvalid if bad."""
        return _snapshot(environment, *load_derived(self.path, environment, _versions))

    def apply(
        self,
        environment: str,
        changes: Sequence[FlagChange],
        expected_versions: Mapping[str, str],
    ) -> FlagSnapshot:
        """Write every change to the environment's override file, or none.

        Raises UnknownFlag, VersionConflict (a changed flag's version differs from
        `expected_versions`, or is missing from it) or ConfigInvalid; nothing is
        written then. Returns the snapshot after the write.
        """
        with self._exclusive():
            current = self.load(environment)
            for change in changes:
                current.flag(change.flag)  # raises UnknownFlag
            stale = [
                change.flag
                for change in changes
                if expected_versions.get(change.flag) != current.versions[change.flag]
            ]
            if stale:
                raise VersionConflict(list(dict.fromkeys(stale)), current)
            if not changes:
                return current
            target = override_path(self.path, environment)
            before = _override_text(target)
            header = f"{environment} overrides, deep-merged over {self.path.name}."
            after = self._edited(environment, before, changes)
            if after is None:
                after = edit_by_round_trip(before, changes, header)
            return self._replace(environment, after)

    def history(self, environment: str) -> list[Path]:
        """Previous versions of the environment's override file, newest first."""
        prefix = f"{override_path(self.path, environment).name}."
        if not self.history_dir.is_dir():
            return []
        kept = [
            candidate
            for candidate in self.history_dir.iterdir()
            if candidate.name.startswith(prefix) and candidate.is_file()
        ]
        # Fixed-width UTC timestamps: name order is time order.
        return sorted(kept, key=lambda candidate: candidate.name, reverse=True)

    def restore(self, environment: str, version_path: Path) -> FlagSnapshot:
        """Make `version_path` (one of `history(environment)`) the override file again.

        No version check: this is an operator's deliberate act. Raises ValueError for
        a file of another environment, ConfigInvalid if it no longer validates against
        the current base file; nothing is written then. The replaced file joins the
        history, so a restore can itself be undone.
        """
        prefix = f"{override_path(self.path, environment).name}."
        if not version_path.name.startswith(prefix):
            raise ValueError(f"{version_path} is not a version of {environment!r}")
        text = checked_text(version_path)
        with self._exclusive():
            return self._replace(environment, text)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        key = self._lock_path.absolute()
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
        with thread_lock:
            descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)  # releases the flock

    def _edited(
        self, environment: str, before: str | None, changes: Sequence[FlagChange]
    ) -> str | None:
        """The targeted edit of the override (`yaml_edit`) if it applies and parses to
        exactly what the round trip would write; None sends the caller to the round trip,
        so a mistake of the editor can cost speed, never data."""
        after = edit_flags(before, changes) if before is not None else None
        if before is None or after is None:
            return None
        target = override_path(self.path, environment)
        data_before, data_after = parsed_data(target, before), parsed_data(target, after)
        if not isinstance(data_before, dict) or data_after is None:
            return None
        expected = _expected(copy.deepcopy(data_before), changes)
        return after if data_after == expected else None

    def _replace(self, environment: str, text: str) -> FlagSnapshot:
        """Validate `text` as the override file, then swap it in atomically (lock held)."""
        return self._write(environment, text, *self._validate(environment, text))

    def _write(
        self, environment: str, text: str, config: FlagConfig, versions: dict[str, str]
    ) -> FlagSnapshot:
        """Swap in `text`, already validated as `config`, atomically (lock held)."""
        target = override_path(self.path, environment)
        self._remove_leftovers(target)
        # Keep the file's permissions: services reading it may run as another user.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        # The history copy is written and fsynced in a second thread while this one
        # writes the new file: the two fsyncs then share the file system's journal
        # commits instead of waiting for one each. Both are on disk before the rename.
        with ThreadPoolExecutor(max_workers=1) as background:
            copying = background.submit(self._copy_to_history, target) if target.exists() else None
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fchmod(handle.fileno(), mode)
                    os.fsync(handle.fileno())
                kept = copying.result() if copying is not None else None
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                if copying is not None and copying.exception() is None:
                    copying.result().unlink(missing_ok=True)  # nothing was replaced
                raise
        _fsync_directory(target.parent)
        if kept is not None:
            for old in self.history(environment)[self.keep_versions :]:
                old.unlink(missing_ok=True)
        return _snapshot(environment, config, versions)

    def _validate(self, environment: str, text: str) -> tuple[FlagConfig, dict[str, str]]:
        """The config that `text` as the override would give, with its flags' versions;
        ConfigInvalid naming the real files if it would not validate."""
        return load_derived(self.path, environment, _versions, override_text=text)

    def _copy_to_history(self, target: Path) -> Path:
        """A durable copy of `target` in the history folder; its path."""
        self.history_dir.mkdir(exist_ok=True)
        stamp = datetime.now(UTC)
        while True:
            kept = self.history_dir / f"{target.name}.{stamp:%Y%m%dT%H%M%S.%fZ}"
            if not kept.exists():
                break
            stamp += timedelta(microseconds=1)
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=self.history_dir)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(target.read_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, kept)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return kept

    def _remove_leftovers(self, target: Path) -> None:
        """Temp files of a writer killed mid-write (the lock is ours: none is live)."""
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        if self.history_dir.is_dir():
            for leftover in self.history_dir.glob(".tmp-*"):
                leftover.unlink(missing_ok=True)


def _versions(config: FlagConfig) -> dict[str, str]:
    """Each flag's version (the loader computes it once per content of the files)."""
    return {key: definition_version(flag) for key, flag in config.flags.items()}


def _snapshot(environment: str, config: FlagConfig, versions: dict[str, str]) -> FlagSnapshot:
    return FlagSnapshot(environment=environment, config=config, versions=dict(versions))


def _yaml() -> YAML:
    # One instance per use: ruamel's YAML objects are not thread-safe.
    yaml = YAML()  # round-trip mode, YAML 1.2: `on`/`off` stay strings
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _override_text(target: Path) -> str | None:
    """The override file's text, within the YAML limits; None when the environment has
    none yet."""
    return checked_text(target) if target.exists() else None


def edit_by_round_trip(text: str | None, changes: Sequence[FlagChange], header: str) -> str:
    """The override `text` (None: no file yet, start one with `header`) after `changes`,
    through ruamel's round trip: any layout, comments and key order kept, but tens of
    milliseconds for a large file (the fallback of the targeted edit)."""
    document = _read_override(text, header)
    for change in changes:
        _set_change(document["flags"], change)
    return _dump(document)


def _read_override(text: str | None, header: str) -> CommentedMap:
    data = _yaml().load(text) if text is not None else None
    if not isinstance(data, CommentedMap):
        data = CommentedMap()
        data.yaml_set_start_comment(
            f"{header}\nCreated by the rollout dashboard; list only the keys that change.\n"
        )
    if not isinstance(data.get("flags"), CommentedMap):
        data["flags"] = CommentedMap()
    return data


def _set_change(flags: CommentedMap, change: FlagChange) -> None:
    """Set the flag's `state` and `rollout.percentage`, creating the maps it lacks."""
    entry = flags.get(change.flag)
    if not isinstance(entry, CommentedMap):
        entry = CommentedMap()
        _append(flags, change.flag, entry)
    state = FlagState(change.state).value
    if "state" in entry:
        previous = entry["state"]
        # Keep the quoting the file used for this value.
        entry["state"] = type(previous)(state) if isinstance(previous, ScalarString) else state
    else:
        entry.insert(0, "state", state)
    rollout = entry.get("rollout")
    if not isinstance(rollout, CommentedMap):
        rollout = CommentedMap()
        rollout.fa.set_flow_style()  # `rollout: {percentage: 25}`, as the bundled files do
        _append(entry, "rollout", rollout)
    rollout["percentage"] = _number(change.percentage)


def _expected(document: dict[str, Any], changes: Sequence[FlagChange]) -> dict[str, Any]:
    """The override's data after `changes`, as `_set_change` makes it (plain data: what
    a targeted edit must parse to)."""
    if not isinstance(document.get("flags"), dict):
        document["flags"] = {}
    for change in changes:
        entry = document["flags"].get(change.flag)
        if not isinstance(entry, dict):
            entry = document["flags"][change.flag] = {}
        entry["state"] = FlagState(change.state).value
        if not isinstance(entry.get("rollout"), dict):
            entry["rollout"] = {}
        entry["rollout"]["percentage"] = _number(change.percentage)
    return document


def _number(percentage: float) -> int | float:
    value = float(percentage)
    return int(value) if value.is_integer() else value


def _tail(mapping: CommentedMap) -> tuple[CommentedMap, Any] | None:
    """The block mapping holding the last key of `mapping`'s text, and that key."""
    while mapping:
        last = next(reversed(mapping))
        value = mapping[last]
        if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
            mapping = value
            continue
        return mapping, last
    return None


def _append(mapping: CommentedMap, key: str, value: Any) -> None:
    """Add `key` at the end of `mapping`, keeping blank lines and comments that
    followed the old last key after the new one (ruamel ties them to the key above)."""
    before = _tail(mapping)
    mapping[key] = value
    if before is None:
        return
    holder, last = before
    items = holder.ca.items.get(last)
    if not items or len(items) < 3 or items[2] is None:
        return
    token: CommentToken = items[2]
    text = str(token.value)
    newline = text.find("\n")
    if text.startswith("\n"):
        keep, move = "", text
    elif newline >= 0:
        keep, move = text[: newline + 1], text[newline + 1 :]  # an end-of-line comment stays
    else:
        return
    if not move:
        return
    after = _tail(mapping)
    if after is None:
        return
    if keep:
        token.value = keep
        move = "\n" + move
    else:
        items[2] = None
    new_holder, new_last = after
    slots = new_holder.ca.items.setdefault(new_last, [None, None, None, None])
    slots[2] = CommentToken(move, token.start_mark, None)


def _dump(document: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(document, out)
    return out.getvalue()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
