"""The `unleash` flag backend: an Unleash project's features, through its Admin API.

Reading is one call per environment (`POST /api/admin/features-batch/export`: features,
strategies, switches, tags and dependencies at once); the mapping is `app.unleash.mapping`.

Unleash keeps no versions and ignores `If-Match`: the last writer wins. So every write
here is a compare-and-set:

1. every change is validated (a whole percentage 0..100: Unleash itself stores "150"),
   read-only and unknown flags are refused, and the environment is read again: any flag
   whose version differs from the one the caller decided on refuses the whole request
   (VersionConflict), before anything is written;
2. each flag is then written with a JSON Patch on its one strategy that first `test`s
   the rollout the decision was based on, and only then `replace`s it (never a PUT,
   which would wipe the variants); a failed test (Unleash answers HTTP 500 "Test
   operation failed") is a VersionConflict, never retried. The switch (`on`/`off`) has
   no such guard in Unleash: it is sent right after a passing test;
3. the environment is read back and every written flag checked: a mismatch is an error.

Writers of this backend sharing `write_lock` (the runtime passes a file lock in the
state directory) also queue on it between the check and the write, since Unleash's own
test is not atomic against two truly simultaneous patches. Writes are not atomic across
flags (`atomic` False): a request stopped after a first write raises PartiallyApplied.

After a write, the event Unleash logged for it is looked up (`receipts`), and
`external_changes` lists the changes made in Unleash itself.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.flags.backend import (
    FlagBackend,
    FlagChange,
    FlagSnapshot,
    PartiallyApplied,
    UnknownFlag,
    VersionConflict,
)
from app.flags.loader import ConfigInvalid, ConfigIssue
from app.flags.model import FLAG_KEY, FlagConfig, FlagState
from app.unleash.api import TestFailed, UnleashApi, UnleashRefused, UnleashUnavailable
from app.unleash.mapping import (
    ExportedFeature,
    MappedFlag,
    admin_feature,
    exported_features,
    map_feature,
    parse_version,
)
from app.unleash.metadata import load_metadata

__all__ = [
    "ExternalChange",
    "UnleashFlagBackend",
    "dashboard_event_ids",
    "file_lock",
    "receipt_text",
]

#: Event types that change what a flag serves in an environment.
CHANGE_EVENTS = (
    "feature-strategy-update",
    "feature-strategy-add",
    "feature-strategy-remove",
    "feature-environment-enabled",
    "feature-environment-disabled",
)
#: Up to this many flags, `apply` reads each flag on its own before writing (2 calls
#: each, a few ms); beyond it, one export of the whole environment.
_FLAG_READS_UP_TO = 5
#: Flags written at once by a request of more than `_FLAG_READS_UP_TO` flags.
_PARALLEL_WRITES = 4
_RECEIPT = re.compile(r"Unleash events? (#\d+(?:, #\d+)*)")


@dataclass(frozen=True)
class ExternalChange:
    """A change Unleash logged that the dashboard did not make."""

    flag: str
    environment: str
    at: datetime
    actor: str
    summary: str
    event_id: int

    @property
    def label(self) -> str:
        """`changed in Unleash by olga: rollout 5 % → 25 %`."""
        return f"changed in Unleash by {self.actor}: {self.summary}"


@dataclass(frozen=True)
class _Read:
    """One environment read: the snapshot and each flag's raw mapping."""

    snapshot: FlagSnapshot
    mapped: dict[str, MappedFlag]


class UnleashFlagBackend(FlagBackend):
    """The features of Unleash project `project` behind `api`.

    Every method raises UnleashUnavailable (a SourceUnavailable) when Unleash is down,
    slow past the API's timeout or failing, and UnleashRefused for a 4xx answer.
    """

    name = "unleash"
    atomic = False

    def __init__(
        self,
        api: UnleashApi,
        project: str = "default",
        metadata_file: Path | None = None,
        write_lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.api = api
        self.project = project
        self.metadata_file = metadata_file
        self._write_lock = write_lock or nullcontext
        self._token_name: str | None = None

    def __repr__(self) -> str:
        return f"UnleashFlagBackend({self.api!r}, {self.project!r})"

    def environments(self) -> list[str]:
        """The project's enabled environments, sorted."""
        found = self.api.get(f"/api/admin/environments/project/{self.project}")
        return sorted(
            str(env["name"]) for env in (found or {}).get("environments", []) if env.get("enabled")
        )

    def load(self, environment: str) -> FlagSnapshot:
        """The environment's features as flags (one export call), read-only ones with
        their reason; ConfigInvalid if the metadata file is bad."""
        return self._read(environment).snapshot

    def apply(
        self,
        environment: str,
        changes: Sequence[FlagChange],
        expected_versions: Mapping[str, str],
    ) -> FlagSnapshot:
        """Write each change as a compare-and-set (see the module docstring).

        Before any write: ConfigInvalid for a percentage that is not a whole number
        0..100, UnknownFlag, ConfigInvalid for a read-only flag, VersionConflict (every
        stale flag listed) when a version differs from `expected_versions`. Then each flag
        is written on its own, going on after a conflict or a refusal (not after Unleash
        stops answering); any problem after that is a PartiallyApplied naming every flag
        (`unverified` when the writes could not be read back). Returns the snapshot read
        back, with `receipts`.
        """
        by_flag = {change.flag: change for change in changes}
        _check_percentages(environment, by_flag.values())
        if not by_flag:
            return self.load(environment)
        with self._write_lock():
            mapped = self._current(environment, list(by_flag))
            refused = [
                ConfigIssue(Path(f"unleash/{environment}"), None, flag, f"read-only: {reason}")
                for flag in by_flag
                if (reason := mapped[flag].read_only) is not None
            ]
            if refused:
                raise ConfigInvalid(refused)
            stale = [
                flag for flag in by_flag if expected_versions.get(flag) != mapped[flag].version
            ]
            if stale:
                raise VersionConflict(stale, self.load(environment))
            before_events = self._latest_event_id(environment)
            written: list[str] = []
            conflicted: list[str] = []
            failed: dict[str, str] = {}
            down: list[UnleashUnavailable] = []

            def write(flag: str) -> str | None:
                """One flag's compare-and-set: None when written, else what happened."""
                if down:
                    return f"failed: not attempted: {down[0]}"
                try:
                    self._write(environment, mapped[flag], by_flag[flag], expected_versions[flag])
                except TestFailed:
                    return "conflicted"  # nothing written for it; the others go on
                except UnleashUnavailable as error:
                    down.append(error)
                    return f"failed: {error}"
                except (UnleashRefused, RuntimeError, OSError) as error:
                    return f"failed: {error}"
                return None

            # Each flag is its own compare-and-set, so many are written a few at a time
            # (an emergency rollback of hundreds is latency-bound).
            workers = 1 if len(by_flag) <= _FLAG_READS_UP_TO else _PARALLEL_WRITES
            with ThreadPoolExecutor(max_workers=workers) as pool:
                said = dict(zip(by_flag, pool.map(write, by_flag), strict=True))
            for flag, outcome in said.items():
                if outcome is None:
                    written.append(flag)
                elif outcome == "conflicted":
                    conflicted.append(flag)
                else:
                    failed[flag] = outcome.removeprefix("failed: ")
            try:
                after = self._read(environment)
            except UnleashUnavailable as error:
                # Written but not read back: only a later read can tell (reconciliation).
                raise PartiallyApplied(
                    [], conflicted, failed, None, unverified={f: str(error) for f in written}
                ) from None
            mismatched = _mismatches(after.mapped, {flag: by_flag[flag] for flag in written})
            for flag, problem in mismatched.items():
                written.remove(flag)
                failed[flag] = problem
            try:
                receipts = self._receipts(environment, written, before_events)
            except UnleashUnavailable:
                receipts = {}  # applied and verified all the same
        fresh = FlagSnapshot(
            environment,
            after.snapshot.config,
            after.snapshot.versions,
            after.snapshot.read_only,
            receipts,
        )
        if conflicted and not written and not failed:
            raise VersionConflict(conflicted, fresh)
        if conflicted or failed:
            raise PartiallyApplied(written, conflicted, failed, fresh)
        return fresh

    def token_name(self) -> str:
        """The name of the token this backend writes with (Unleash's `createdBy`)."""
        if self._token_name is None:
            found = self.api.get("/api/admin/user") or {}
            self._token_name = str((found.get("user") or {}).get("username") or "")
        return self._token_name

    def external_changes(
        self, environment: str, limit: int = 50, ours: Collection[int] | None = None
    ) -> list[ExternalChange]:
        """Changes to what the project's flags serve in `environment` that the dashboard
        did not make, newest first, from the last `limit` such events. `ours` are the
        event ids the dashboard's audit records (`dashboard_event_ids`); without them,
        every event made with this backend's own token counts as the dashboard's."""
        found = self.api.get(
            "/api/admin/search/events",
            {
                "project": f"IS:{self.project}",
                "environment": f"IS:{environment}",
                "type": f"IS_ANY_OF:{','.join(CHANGE_EVENTS)}",
                "limit": max(1, min(limit, 1000)),
            },
        )
        mine = self.token_name() if ours is None else None
        changes = []
        for event in (found or {}).get("events", []):
            if event.get("type") not in CHANGE_EVENTS or not event.get("featureName"):
                continue
            event_id = int(event["id"])
            actor = str(event.get("createdBy") or "unknown")
            if (ours is not None and event_id in ours) or (mine is not None and actor == mine):
                continue
            changes.append(
                ExternalChange(
                    flag=str(event["featureName"]),
                    environment=str(event.get("environment") or environment),
                    at=_instant(event.get("createdAt")),
                    actor=actor,
                    summary=_event_summary(event),
                    event_id=event_id,
                )
            )
        return changes

    # -- internals ---------------------------------------------------------------

    def _current(self, environment: str, flags: Sequence[str]) -> dict[str, MappedFlag]:
        """The flags as they are now (UnknownFlag for one the project lacks): two small
        reads per flag (the feature, its tags) for a few flags, one export for many."""
        if len(flags) > _FLAG_READS_UP_TO:
            read = self._read(environment)
            for flag in flags:
                read.snapshot.flag(flag)  # UnknownFlag
            return read.mapped
        found = {}
        for flag in flags:
            if not FLAG_KEY.fullmatch(flag):
                raise UnknownFlag(flag)
            try:
                body = self.api.get(f"/api/admin/projects/{self.project}/features/{flag}")
                tags = (self.api.get(f"/api/admin/features/{flag}/tags") or {}).get("tags", [])
            except UnleashRefused as error:
                if error.status == 404:
                    raise UnknownFlag(flag) from None
                raise
            if body.get("archived"):
                raise UnknownFlag(flag)
            found[flag] = map_feature(admin_feature(body, environment, tags))
        return found

    def _read(self, environment: str) -> _Read:
        export = self.api.post(
            "/api/admin/features-batch/export",
            {"environment": environment, "project": self.project},
        )
        metadata = load_metadata(self.metadata_file)
        features = [f for f in exported_features(export or {}) if _usable_key(f)]
        mapped = {f.name: map_feature(f, metadata.flags.get(f.name)) for f in features}
        known = set(mapped)
        flags = {}
        for name, flag in mapped.items():
            deps = flag.definition.metadata.dependencies
            if any(dep not in known for dep in deps):
                meta = flag.definition.metadata.model_copy(
                    update={"dependencies": tuple(d for d in deps if d in known)}
                )
                flag = MappedFlag(
                    flag.definition.model_copy(update={"metadata": meta}),
                    flag.version,
                    flag.read_only,
                    flag.strategy_id,
                    flag.rollout,
                )
                mapped[name] = flag
            flags[name] = flag.definition
        try:
            config = FlagConfig(
                version=f"unleash:{self.project}",
                environment=environment,
                global_=metadata.global_settings(),
                phases=metadata.phase_list,
                phases_start=metadata.phases_start,
                flags=flags,
            )
        except ValidationError as error:
            where = Path(f"unleash/{environment}")
            raise ConfigInvalid(
                [ConfigIssue(where, None, None, str(item["msg"])) for item in error.errors()]
            ) from None
        snapshot = FlagSnapshot(
            environment,
            config,
            {name: flag.version for name, flag in mapped.items()},
            {name: flag.read_only for name, flag in mapped.items() if flag.read_only},
        )
        return _Read(snapshot, mapped)

    def _write(self, environment: str, flag: MappedFlag, change: FlagChange, expected: str) -> None:
        """One flag's compare-and-set; TestFailed when its rollout moved since `expected`."""
        basis = parse_version(expected)
        assert basis is not None and flag.strategy_id is not None  # checked by the caller
        feature = f"/api/admin/projects/{self.project}/features/{flag.definition.key}"
        target = _target_rollout(change)
        test = {"op": "test", "path": "/parameters/rollout", "value": basis.rollout}
        operations: list[dict[str, Any]] = [test]
        if target != flag.rollout:
            operations.append({"op": "replace", "path": "/parameters/rollout", "value": target})
        # A test-only patch writes nothing (and logs no event): it checks the rollout
        # right before the switch, which Unleash cannot guard itself.
        self.api.patch(
            f"{feature}/environments/{environment}/strategies/{flag.strategy_id}", operations
        )
        on = change.state is not FlagState.DISABLED
        if on != basis.enabled:
            self.api.post(f"{feature}/environments/{environment}/{'on' if on else 'off'}")

    def _latest_event_id(self, environment: str) -> int:
        found = self.api.get(
            "/api/admin/search/events", {"project": f"IS:{self.project}", "limit": 1}
        )
        events = (found or {}).get("events") or []
        return int(events[0]["id"]) if events else 0

    def _receipts(self, environment: str, flags: Iterable[str], after: int) -> dict[str, str]:
        """For each written flag, the events this token logged for it since `after`: one
        search per flag for a few, one search of the project's newest events for many."""
        name = self.token_name()
        wanted = list(flags)
        if len(wanted) <= _FLAG_READS_UP_TO:
            found = [
                event
                for flag in wanted
                for event in (
                    self.api.get(
                        "/api/admin/search/events",
                        {"feature": f"IS:{flag}", "environment": f"IS:{environment}", "limit": 10},
                    )
                    or {}
                ).get("events", [])
            ]
        else:
            query: dict[str, str | int] = {
                "project": f"IS:{self.project}",
                "environment": f"IS:{environment}",
                "type": f"IS_ANY_OF:{','.join(CHANGE_EVENTS)}",
                "limit": min(1000, 3 * len(wanted) + 50),
            }
            found = (self.api.get("/api/admin/search/events", query) or {}).get("events", [])
        ids: dict[str, list[int]] = {}
        for event in found:
            if (
                int(event["id"]) > after
                and event.get("featureName") in wanted
                and event.get("createdBy") == name
                and event.get("type") in CHANGE_EVENTS
            ):
                ids.setdefault(str(event["featureName"]), []).append(int(event["id"]))
        return {flag: receipt_text(sorted(set(found_ids)), name) for flag, found_ids in ids.items()}


def receipt_text(event_ids: Sequence[int], token_name: str) -> str:
    """`Unleash event #15 by rollout-dashboard` (`events #15, #16` for several)."""
    plural = "s" if len(event_ids) > 1 else ""
    listed = ", ".join(f"#{event_id}" for event_id in event_ids)
    return f"Unleash event{plural} {listed} by {token_name}"


def dashboard_event_ids(details: Iterable[str]) -> set[int]:
    """The Unleash event ids named by audit details (`receipt_text`)."""
    ids: set[int] = set()
    for detail in details:
        for found in _RECEIPT.finditer(detail or ""):
            ids.update(int(part.strip().lstrip("#")) for part in found.group(1).split(","))
    return ids


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` for the block (released when the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _usable_key(feature: ExportedFeature) -> bool:
    return FLAG_KEY.fullmatch(feature.name) is not None


def _target_rollout(change: FlagChange) -> str:
    if change.state is FlagState.ENABLED:
        return "100"
    return str(int(change.percentage))


def _check_percentages(environment: str, changes: Iterable[FlagChange]) -> None:
    """ConfigInvalid unless every percentage is a whole number within 0..100."""
    issues = [
        ConfigIssue(
            Path(f"unleash/{environment}"),
            None,
            change.flag,
            f"percentage must be a whole number within 0..100, got {change.percentage:g}",
        )
        for change in changes
        if not (
            isinstance(change.percentage, int | float)
            and change.percentage == change.percentage  # not NaN
            and 0 <= change.percentage <= 100
            and float(change.percentage).is_integer()
        )
    ]
    if issues:
        raise ConfigInvalid(issues)


def _mismatches(
    read: Mapping[str, MappedFlag], written: Mapping[str, FlagChange]
) -> dict[str, str]:
    """The written flags that do not read back as written, with what Unleash shows."""
    problems = {}
    for flag, change in written.items():
        mapped = read.get(flag)
        want_on = change.state is not FlagState.DISABLED
        want_rollout = _target_rollout(change)
        if mapped is None:
            problems[flag] = "Unleash no longer shows the feature after the write"
            continue
        on = mapped.definition.state is not FlagState.DISABLED
        if on != want_on or mapped.rollout != want_rollout:
            problems[flag] = (
                f"Unleash shows {'on' if on else 'off'} at rollout {mapped.rollout!s} after "
                f"writing {'on' if want_on else 'off'} at {want_rollout}"
            )
    return problems


def _instant(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


def _event_summary(event: Mapping[str, Any]) -> str:
    """`rollout 5 % → 25 %`, `switched on`, `strategy added`: the event in plain words."""
    kind = event.get("type")
    if kind == "feature-environment-enabled":
        return "switched on"
    if kind == "feature-environment-disabled":
        return "switched off"
    if kind == "feature-strategy-add":
        return f"strategy {(event.get('data') or {}).get('name', '')} added".replace("  ", " ")
    if kind == "feature-strategy-remove":
        return "strategy removed"
    before = ((event.get("preData") or {}).get("parameters") or {}).get("rollout")
    after = ((event.get("data") or {}).get("parameters") or {}).get("rollout")
    if before != after:
        return f"rollout {before} % → {after} %"
    return "strategy updated"
