"""Read the flag YAML (base file plus one environment's overrides) into a `FlagConfig`.

Every problem is reported with the file and line it came from, and all of them at
once: a newcomer fixing a config should not have to rerun the loader per typo.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from app.flags.model import FlagConfig

__all__ = [
    "BUNDLED_CONFIG",
    "ConfigInvalid",
    "ConfigIssue",
    "check_config",
    "environments",
    "load_config",
    "override_path",
]

BUNDLED_CONFIG: Path = Path(__file__).parent / "data" / "feature_flags.yaml"

_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# A path into the YAML document: mapping keys and sequence indices, like pydantic's `loc`.
_YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the file allows."""

    file: Path
    line: int | None
    flag: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        parts = [where, self.flag, self.message] if self.flag else [where, self.message]
        return ": ".join(parts)


class ConfigInvalid(ValueError):
    """A config could not be loaded; `issues` lists every problem found."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# libyaml's parser when PyYAML has it (about 20x faster on a 1,000-flag file), with the
# same safe constructor and the same error marks.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):  # type: ignore[valid-type,misc]
    """SafeLoader that reads only true/false as booleans (YAML 1.2).

    YAML 1.1 turns `on`/`off`/`yes`/`no` into booleans, which would make the seed's
    `variants: {on: true, off: false}` keys booleans instead of variant names.
    """


_Loader.yaml_implicit_resolvers = {
    first: [entry for entry in resolvers if entry[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _Origin(NamedTuple):
    file: Path
    line: int
    is_mapping: bool


@dataclass
class _Document:
    file: Path
    data: Any
    # path -> (1-based line of the key or item, whether its value is a mapping)
    lines: dict[_YamlPath, tuple[int, bool]] = field(default_factory=dict)


def override_path(path: Path, environment: str) -> Path:
    """The override file for `environment` beside `path` (it may not exist)."""
    return path.with_name(f"{path.stem}_{environment}{path.suffix}")


def environments(path: Path) -> list[str]:
    """Sorted names of the environments that have an override file beside `path`."""
    prefix = f"{path.stem}_"
    names = (
        candidate.name[len(prefix) : -len(path.suffix) or None]
        for candidate in path.parent.glob(f"{prefix}*{path.suffix}")
        if candidate.is_file()
    )
    return sorted(name for name in names if _ENVIRONMENT_NAME.match(name))


def load_config(
    path: Path, environment: str | None = None, *, override_text: str | None = None
) -> FlagConfig:
    """The config at `path`, deep-merged with `environment`'s override file if present.

    `override_text` stands in for the override file's content (to validate a write
    before making it). Raises ConfigInvalid listing every issue (syntax, duplicate keys,
    validation), each with its file and line.
    """
    config, issues = _build(path, environment, override_text)
    if config is None:
        raise ConfigInvalid(issues)
    return config


def check_config(path: Path) -> list[ConfigIssue]:
    """Issues of the base config alone and merged with each override beside it; [] if valid."""
    issues: list[ConfigIssue] = []
    for environment in [None, *environments(path)]:
        issues.extend(_build(path, environment)[1])
    return list(dict.fromkeys(issues))


def _build(
    path: Path, environment: str | None, override_text: str | None = None
) -> tuple[FlagConfig | None, list[ConfigIssue]]:
    issues: list[ConfigIssue] = []
    if environment is not None and not _ENVIRONMENT_NAME.match(environment):
        issues.append(ConfigIssue(path, None, None, f"invalid environment name {environment!r}"))
        return None, issues
    documents = [_read(path, issues)]
    if environment is not None:
        overrides = override_path(path, environment)
        # No override file just means the base applies unchanged in that environment.
        if override_text is not None or overrides.exists():
            documents.append(_read(overrides, issues, override_text))
    readable = [document for document in documents if document is not None]
    if len(readable) < len(documents):
        return None, issues  # unreadable or broken YAML: nothing sensible to validate
    # The same parsed documents always give the same result: validate them once. The
    # entry holds the documents, so their ids cannot be reused while it lives.
    key = (environment, *(id(document) for document in readable))
    if key not in _BUILT:
        if len(_BUILT) >= _PARSED_LIMIT:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = (tuple(readable), *_validate(readable, environment, path))
    _, config, found = _BUILT[key]
    issues = [*issues, *found]  # duplicate keys are reported while reading
    return (None if issues else config), issues


def _validate(
    readable: list[_Document], environment: str | None, path: Path
) -> tuple[FlagConfig | None, list[ConfigIssue]]:
    issues: list[ConfigIssue] = []
    data: dict[str, Any] = {}
    lines: dict[_YamlPath, _Origin] = {}
    for document in readable:
        data = _deep_merge(data, document.data)
        _merge_lines(lines, document)
    if environment is not None:
        data["environment"] = environment

    issues.extend(_dependency_issues(data, lines, path))
    try:
        config = FlagConfig.model_validate(data)
    except ValidationError as error:
        issues.extend(_validation_issues(error, lines, path))
        return None, issues
    return (None if issues else config), issues


#: parsed files by (path, sha256 of the text): a 1,000-flag base file is parsed once, not
#: on every action. Cached documents are shared: nothing may mutate their data.
_PARSED: dict[tuple[str, str], tuple[_Document | None, list[ConfigIssue]]] = {}
_PARSED_LIMIT = 64
#: validated configs by (environment, the parsed documents merged)
_BUILT: dict[
    tuple[Any, ...], tuple[tuple[_Document, ...], FlagConfig | None, list[ConfigIssue]]
] = {}


def _read(path: Path, issues: list[ConfigIssue], text: str | None = None) -> _Document | None:
    """Parse one file (or `text` in its place); appends its issues and returns None if
    it cannot be used."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            issues.append(ConfigIssue(path, None, None, f"cannot read file: {error}"))
            return None
    key = (str(path), hashlib.sha256(text.encode()).hexdigest())
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.pop(next(iter(_PARSED)))
        found: list[ConfigIssue] = []
        _PARSED[key] = (_parse(path, text, found), found)
    document, found = _PARSED[key]
    issues.extend(found)
    return document


def _parse(path: Path, text: str, issues: list[ConfigIssue]) -> _Document | None:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        issues.append(ConfigIssue(path, line, None, f"YAML syntax error: {problem}"))
        return None
    except yaml.YAMLError as error:
        issues.append(ConfigIssue(path, None, None, f"YAML error: {error}"))
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        line = node.start_mark.line + 1 if node is not None else None
        issues.append(ConfigIssue(path, line, None, f"top level must be a mapping, found {found}"))
        return None
    document = _Document(path, data)
    _walk(node, (), document, issues)
    return document


def _walk(node: yaml.Node, path: _YamlPath, document: _Document, issues: list[ConfigIssue]) -> None:
    """Record each key's line and report duplicate keys, which PyYAML silently overwrites."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                issues.append(
                    ConfigIssue(
                        document.file,
                        line,
                        _flag_of(child),
                        f"duplicate key '{key}' (first set at line {seen[key]})",
                    )
                )
            else:
                seen[key] = line
            document.lines[child] = (line, isinstance(value_node, yaml.MappingNode))
            _walk(value_node, child, document, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            document.lines[child] = (item.start_mark.line + 1, isinstance(item, yaml.MappingNode))
            _walk(item, child, document, issues)


def _deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; anything else in `override` replaces `base`."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base[key], value) if key in base else value
        return merged
    return override


def _merge_lines(lines: dict[_YamlPath, _Origin], document: _Document) -> None:
    """Point each path at the file that set it last, mirroring `_deep_merge`."""
    # Paths that have keys below them: only those can leave stale children behind.
    parents = {p[:depth] for p in lines for depth in range(1, len(p))}
    for path, (line, is_mapping) in document.lines.items():
        earlier = lines.get(path)
        if earlier is not None and not (is_mapping and earlier.is_mapping) and path in parents:
            # A replaced list or scalar: the earlier file's keys below it are gone.
            for stale in [p for p in lines if len(p) > len(path) and p[: len(path)] == path]:
                del lines[stale]
        lines[path] = _Origin(document.file, line, is_mapping)


def _flag_of(path: tuple[Any, ...]) -> str | None:
    return str(path[1]) if len(path) >= 2 and path[0] == "flags" else None


def _locate(
    loc: tuple[Any, ...], lines: dict[_YamlPath, _Origin], default_file: Path
) -> tuple[Path, int | None]:
    """File and line of the deepest key of `loc` that exists in the YAML."""
    for end in range(len(loc), 0, -1):
        found = lines.get(tuple(loc[:end]))
        if found is not None:
            return found.file, found.line
    return default_file, None


def _dependency_issues(
    data: dict[str, Any], lines: dict[_YamlPath, _Origin], default_file: Path
) -> list[ConfigIssue]:
    """Unknown dependencies, each at its own line (the model reports only the first flag)."""
    flags = data.get("flags")
    if not isinstance(flags, dict):
        return []
    issues = []
    for key, body in flags.items():
        metadata = body.get("metadata") if isinstance(body, dict) else None
        dependencies = metadata.get("dependencies") if isinstance(metadata, dict) else None
        if not isinstance(dependencies, list):
            continue
        for index, dependency in enumerate(dependencies):
            if isinstance(dependency, str) and dependency not in flags:
                file, line = _locate(
                    ("flags", key, "metadata", "dependencies", index), lines, default_file
                )
                issues.append(
                    ConfigIssue(file, line, str(key), f"unknown dependency '{dependency}'")
                )
    return issues


def _validation_issues(
    error: ValidationError,
    lines: dict[_YamlPath, _Origin],
    default_file: Path,
) -> list[ConfigIssue]:
    issues = []
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        if not loc and "unknown dependencies" in message:
            continue  # already reported per dependency by _dependency_issues
        flag = _flag_of(loc)
        field_path = loc[2:] if flag is not None else loc
        if field_path:
            message = f"{'.'.join(str(part) for part in field_path)}: {message}"
        value = detail.get("input")
        if detail["type"] != "missing" and isinstance(value, str | int | float | bool):
            message = f"{message} (got {value!r})"
        file, line = _locate(loc, lines, default_file)
        issues.append(ConfigIssue(file, line, flag, message))
    return issues
