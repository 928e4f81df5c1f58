"""Read the flag YAML (base file plus one environment's overrides) into a `FlagConfig`.

Every problem is reported with the file and line it came from, and all of them at
once: a newcomer fixing a config should not have to rerun the loader per typo.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import yaml
from pydantic import ValidationError

from app.errors import RolloutError
from app.flags.model import FlagConfig, FlagDefinition, on_for_nobody
from app.flags.yaml_limits import YamlRejected, check_text, read_text
from app.quoting import quoted

__all__ = [
    "BUNDLED_CONFIG",
    "ConfigInvalid",
    "ConfigIssue",
    "check_config",
    "checked_text",
    "environments",
    "load_config",
    "load_derived",
    "override_path",
    "parsed_data",
]

BUNDLED_CONFIG: Path = Path(__file__).parent / "data" / "feature_flags.yaml"

T = TypeVar("T")

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
        flag = self.flag if self.flag is None or _PLAIN.fullmatch(self.flag) else _quoted(self.flag)
        parts = [where, flag, self.message] if flag else [where, self.message]
        return ": ".join(parts)


#: flag keys shown as they are in messages; any other is quoted, escaped and cut
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _quoted(value: object) -> str:
    """A name or value from a config file in a message: names there are ASCII, so any
    other character is escaped and a look-alike letter shows for what it is."""
    return quoted(value, ascii_only=True)


class ConfigInvalid(RolloutError, ValueError):
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

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar Python refuses (an int of 5,000 digits, the date 2026-13-45) becomes
        a YAML error at its line instead of escaping as a bare ValueError."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {_quoted(str(node.value))}: {str(error).split(';')[0]}",
                node.start_mark,
            ) from None


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
    names = (name for _, name in _override_files(path))
    return sorted(name for name in names if _ENVIRONMENT_NAME.fullmatch(name))


def _override_files(path: Path) -> list[tuple[Path, str]]:
    """Files beside `path` named like its overrides, with the environment name each gives."""
    prefix = f"{path.stem}_"
    return [
        (candidate, candidate.name[len(prefix) : -len(path.suffix) or None])
        for candidate in sorted(path.parent.glob(f"{prefix}*{path.suffix}"))
        if candidate.is_file()
    ]


def load_config(
    path: Path, environment: str | None = None, *, override_text: str | None = None
) -> FlagConfig:
    """The config at `path`, deep-merged with `environment`'s override file if present.

    `override_text` stands in for the override file's content (to validate a write
    before making it). Raises ConfigInvalid listing every issue (syntax, duplicate keys,
    validation), each with its file and line.
    """
    return _load(path, environment, override_text)[0]


def load_derived(
    path: Path,
    environment: str | None,
    derive: Callable[[FlagConfig], T],
    *,
    override_text: str | None = None,
) -> tuple[FlagConfig, T]:
    """`load_config(...)` and `derive(config)`, computed once per content of the files
    (`derive` must be a pure module-level function). Raises like `load_config`."""
    config, contents = _load(path, environment, override_text)
    derived: T = _derived(environment, path, contents, derive)
    return config, derived


def parsed_data(path: Path, text: str) -> Any | None:
    """The plain data of `text` read as the file `path` (within the limits, cached like
    every parse); None when it does not parse. Nothing may mutate the result."""
    document = _parsed(path, text)[0]
    return None if document is None else document.data


def _load(
    path: Path, environment: str | None, override_text: str | None
) -> tuple[FlagConfig, tuple[tuple[Path, str], ...]]:
    config, issues, contents = _build(path, environment, override_text)
    if config is None:
        raise ConfigInvalid(issues)
    return config, contents


def checked_text(path: Path) -> str:
    """The text of `path` within the limits of `yaml_limits`, for a reader that parses it
    itself (the YAML backend's round trip); ConfigInvalid naming the file, line and limit
    broken, or why it cannot be read."""
    text = _file_text(path)
    try:
        return check_text(text)
    except YamlRejected as error:
        raise ConfigInvalid([_refused(path, error)]) from None


def _file_text(path: Path) -> str:
    """The file's text (size and encoding checked); ConfigInvalid naming the file."""
    try:
        return read_text(path)
    except OSError as error:
        issue = ConfigIssue(path, None, None, f"cannot read file: {error}")
    except YamlRejected as error:
        issue = _refused(path, error)
    raise ConfigInvalid([issue])


def _refused(path: Path, error: YamlRejected) -> ConfigIssue:
    return ConfigIssue(path, error.line, None, f"refused: {error}")


def check_config(path: Path) -> list[ConfigIssue]:
    """Issues of the base config alone and merged with each override beside it; [] if valid."""
    issues = _misnamed_overrides(path)
    # where each empty user list is set -> the environments it leaves the flag off in
    nobody: dict[tuple[Path, int | None, str], list[str]] = {}
    for environment in [None, *environments(path)]:
        config, found, contents = _build(path, environment)
        issues.extend(found)
        if config is None:
            continue
        lines = _MergedLines([document for document in _documents(contents) if document])
        for key in on_for_nobody(config):
            file, line = _locate(("flags", key, "rollout", "user_list"), lines, path)
            name = "the base config" if environment is None else f"environment {environment}"
            nobody.setdefault((file, line, key), []).append(name)
    issues.extend(
        ConfigIssue(
            file,
            line,
            key,
            f"rollout strategy user_list with no user_list (in {', '.join(names)}): "
            "the flag is on for nobody; list its users or choose another strategy",
        )
        for (file, line, key), names in nobody.items()
    )
    return list(dict.fromkeys(issues))


def _documents(contents: tuple[tuple[Path, str], ...]) -> list[_Document | None]:
    return [_parsed(file, text)[0] for file, text in contents]


def _misnamed_overrides(path: Path) -> list[ConfigIssue]:
    """Files named like an override whose environment name is not one (`environments`
    skips them, so a typo would silently leave an environment on the base)."""
    return [
        ConfigIssue(
            candidate,
            None,
            None,
            f"ignored: {_quoted(name)} is not an environment name (letters, digits, '_', '-')",
        )
        for candidate, name in _override_files(path)
        if not _ENVIRONMENT_NAME.fullmatch(name)
    ]


def _build(
    path: Path, environment: str | None, override_text: str | None = None
) -> tuple[FlagConfig | None, list[ConfigIssue], tuple[tuple[Path, str], ...]]:
    """The config (None when invalid), its issues, and the (file, text) pairs it was
    built from."""
    issues: list[ConfigIssue] = []
    if environment is not None and not _ENVIRONMENT_NAME.fullmatch(environment):
        issues.append(
            ConfigIssue(path, None, None, f"invalid environment name {_quoted(environment)}")
        )
        return None, issues, ()
    files = [path]
    texts = [_read(path, issues)]
    if environment is not None:
        overrides = override_path(path, environment)
        # No override file just means the base applies unchanged in that environment.
        if override_text is not None or overrides.exists():
            files.append(overrides)
            texts.append(_read(overrides, issues, override_text))
    pairs = zip(files, texts, strict=True)
    contents = tuple((file, text) for file, text in pairs if text is not None)
    if len(contents) < len(files):
        return None, issues, contents  # unreadable or broken YAML: nothing to validate
    config, found = _built(environment, path, contents)
    issues = [*issues, *found]  # duplicate keys are reported while reading
    return (None if issues else config), issues, contents


def _validate(
    readable: list[_Document], environment: str | None, path: Path
) -> tuple[FlagConfig | None, list[ConfigIssue]]:
    data: dict[str, Any] = {}
    for document in readable:
        data = _deep_merge(data, document.data)
    if environment is not None:
        data["environment"] = environment
    lines = _MergedLines(readable)
    issues = _dependency_issues(data, lines, path)
    try:
        config = FlagConfig.model_validate(_with_validated_flags(data))
    except ValidationError as error:
        issues.extend(_validation_issues(error, lines, path))
        return None, issues
    return (None if issues else config), issues


class _MergedLines:
    """Where each YAML path was set last across the merged files. Built on the first
    lookup: only an invalid config needs it, and it costs more than validating."""

    def __init__(self, documents: list[_Document]) -> None:
        self._documents = documents
        self._lines: dict[_YamlPath, _Origin] | None = None

    def get(self, path: _YamlPath) -> _Origin | None:
        if self._lines is None:
            self._lines = {}
            for document in self._documents:
                _merge_lines(self._lines, document)
        return self._lines.get(path)


#: Flags validated alone, by key and content (`repr` keeps a date apart from a string):
#: a reload or an action validates again only the flags whose merged mapping changed
#: (about 2 ms to look up 1,000 flags, where validating them costs hundreds). Dict reads
#: and writes are atomic: safe to share between threads.
_FLAGS: dict[tuple[str, str], FlagDefinition] = {}
_FLAGS_KEPT = 20_000


def _with_validated_flags(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with each valid flag already a FlagDefinition (FlagConfig takes those as
    they are); an invalid one stays a mapping, so FlagConfig reports it in place."""
    flags = data.get("flags")
    if not isinstance(flags, dict):
        return data
    if len(_FLAGS) > _FLAGS_KEPT:
        _FLAGS.clear()
    validated: dict[Any, Any] = {}
    for key, body in flags.items():
        validated[key] = _validated_flag(key, body)
    return {**data, "flags": validated}


def _validated_flag(key: Any, body: Any) -> Any:
    if not isinstance(key, str) or not isinstance(body, dict):
        return body
    content = (key, repr(body))
    definition = _FLAGS.get(content)
    if definition is None:
        try:
            definition = FlagDefinition.model_validate({**body, "key": key})
        except ValidationError:
            return body
        _FLAGS[content] = definition
    return definition


#: How many parsed files and validated configs are kept. Both caches are keyed by
#: content (path and text), never by object identity, and `lru_cache` is safe to share
#: between Streamlit's threads: a 1,000-flag base file is parsed once, not on every
#: action. Cached documents are shared: nothing may mutate their data.
_CACHED = 64


def _read(path: Path, issues: list[ConfigIssue], text: str | None = None) -> str | None:
    """Parse one file (or `text` in its place); appends its issues and returns None if
    it cannot be used, else the text it was parsed from."""
    if text is None:
        try:
            text = _file_text(path)  # the rest of the checks are cached with the parse
        except ConfigInvalid as error:
            issues.extend(error.issues)
            return None
    document, found = _parsed(path, text)
    issues.extend(found)
    return None if document is None else text


@lru_cache(maxsize=_CACHED)
def _parsed(path: Path, text: str) -> tuple[_Document | None, tuple[ConfigIssue, ...]]:
    """`text` parsed as the file at `path`, with its issues (a pure function of both)."""
    found: list[ConfigIssue] = []
    return _parse(path, text, found), tuple(found)


@lru_cache(maxsize=_CACHED)
def _built(
    environment: str | None, path: Path, contents: tuple[tuple[Path, str], ...]
) -> tuple[FlagConfig | None, tuple[ConfigIssue, ...]]:
    """The files' (path, text) pairs merged in order and validated: the same content
    always gives the same config object. Every file must parse (see `_read`)."""
    documents = _documents(contents)
    readable = [document for document in documents if document is not None]
    config, issues = _validate(readable, environment, path)
    return config, tuple(issues)


@lru_cache(maxsize=_CACHED)
def _derived(
    environment: str | None,
    path: Path,
    contents: tuple[tuple[Path, str], ...],
    derive: Callable[[FlagConfig], Any],
) -> Any:
    config = _built(environment, path, contents)[0]
    assert config is not None  # only called for contents that validated
    return derive(config)


def _parse(path: Path, text: str, issues: list[ConfigIssue]) -> _Document | None:
    try:
        text = check_text(text)  # before any composer: see yaml_limits
    except YamlRejected as error:
        issues.append(_refused(path, error))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        if mark is not None and _tab_at(text, mark.line, mark.column):
            problem += " (a tab: YAML is indented with spaces)"
        kind = "value" if isinstance(error, yaml.constructor.ConstructorError) else "syntax"
        issues.append(ConfigIssue(path, line, None, f"YAML {kind} error: {problem}"))
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


def _tab_at(text: str, line: int, column: int) -> bool:
    lines = text.splitlines()
    return line < len(lines) and "\t" in lines[line][: column + 1]


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
                        f"duplicate key {_quoted(key)} (first set at line {seen[key]})",
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
    loc: tuple[Any, ...], lines: _MergedLines, default_file: Path
) -> tuple[Path, int | None]:
    """File and line of the deepest key of `loc` that exists in the YAML."""
    for end in range(len(loc), 0, -1):
        found = lines.get(tuple(loc[:end]))
        if found is not None:
            return found.file, found.line
    return default_file, None


def _dependency_issues(
    data: dict[str, Any], lines: _MergedLines, default_file: Path
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
    lines: _MergedLines,
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
        if field_path == ("[key]",):  # the flag's key itself (see FlagKey)
            field_path = ()
        if field_path:
            message = f"{'.'.join(str(part) for part in field_path)}: {message}"
        value = detail.get("input")
        if detail["type"] != "missing" and isinstance(value, str | int | float | bool):
            message = f"{message} (got {_quoted(value)})"
        file, line = _locate(loc, lines, default_file)
        issues.append(ConfigIssue(file, line, flag, message))
    return issues
