"""The optional local metadata of the `unleash` backend (`ROLLOUT_UNLEASH_METADATA_FILE`):
what Unleash has no place for (the phase plan, safety flags, the rollout ladder, owners)
and fallbacks for what it may lack (a flag's phase, description, dependencies).

```yaml
phases:
  start: 2026-11-23
  list:
    - {number: 1, name: "Configuration Externalization", planned_week: 1}
safety_flags: [rollback_mechanism]
rollout_steps: [1, 5, 10, 25, 50, 100]
flags:
  phase1_config_externalization:
    phase: 1
    description: "Settings move out of the code"
    owner: platform-team
    dependencies: []
```

Read within the project's YAML limits (`yaml_limits`); every problem is a ConfigInvalid
naming the file.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.flags.loader import ConfigInvalid, ConfigIssue
from app.flags.model import DEFAULT_ROLLOUT_STEPS, FlagMetadata, GlobalSettings, Phase
from app.flags.yaml_limits import YamlRejected, check_text, read_text

__all__ = ["UnleashMetadata", "load_metadata"]

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PhasePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date | None = None
    list_: tuple[Phase, ...] = Field(default=(), alias="list")


class UnleashMetadata(BaseModel):
    """The metadata file's content; empty when there is no file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    phases: _PhasePlan | tuple[Phase, ...] = ()
    safety_flags: tuple[str, ...] = GlobalSettings().safety_flags
    rollout_steps: tuple[float, ...] = DEFAULT_ROLLOUT_STEPS
    flags: dict[str, FlagMetadata] = Field(default_factory=dict)

    @property
    def phase_list(self) -> tuple[Phase, ...]:
        return self.phases.list_ if isinstance(self.phases, _PhasePlan) else self.phases

    @property
    def phases_start(self) -> date | None:
        return self.phases.start if isinstance(self.phases, _PhasePlan) else None

    def global_settings(self) -> GlobalSettings:
        """The settings the dashboard's rules read (ValueError for bad rollout steps)."""
        return GlobalSettings(safety_flags=self.safety_flags, rollout_steps=self.rollout_steps)


_CACHE: dict[Path, tuple[tuple[int, int], UnleashMetadata]] = {}
_CACHE_LOCK = threading.Lock()


def load_metadata(path: Path | None) -> UnleashMetadata:
    """The metadata in `path` (re-read only when the file changed); empty for None.
    ConfigInvalid naming the file for a missing, oversized, malformed or invalid one."""
    if path is None:
        return UnleashMetadata()
    try:
        stat = path.stat()
    except OSError as error:
        raise _invalid(path, f"cannot read it: {error.strerror or error}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    metadata = _read(path)
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, metadata)
    return metadata


def _read(path: Path) -> UnleashMetadata:
    try:
        text = check_text(read_text(path))
        data: Any = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except YamlRejected as error:
        raise _invalid(path, error.message, error.line) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = None if mark is None else int(mark.line) + 1
        raise _invalid(path, f"not valid YAML: {getattr(error, 'problem', error)}", line) from None
    except OSError as error:
        raise _invalid(path, f"cannot read it: {error.strerror or error}") from None
    if data is None:
        return UnleashMetadata()
    try:
        metadata = UnleashMetadata.model_validate(data)
        metadata.global_settings()
    except ValidationError as error:
        issues = [
            ConfigIssue(
                path,
                None,
                None,
                f"{'.'.join(str(p) for p in item['loc'])}: "
                f"{str(item['msg']).removeprefix('Value error, ')}",
            )
            for item in error.errors(include_url=False)
        ]
        raise ConfigInvalid(issues) from None
    return metadata


def _invalid(path: Path, message: str, line: int | None = None) -> ConfigInvalid:
    return ConfigInvalid([ConfigIssue(path, line, None, message)])
